"""The ways in: one module per transport. Each turns a request into hits and hands them to the edge."""
