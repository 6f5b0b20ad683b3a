-- What each rolled-up site-day holds (collector/rollups.py VERSION): 1 = migration 007's dimensions,
-- 2 = also visit:exit_page and visit:exit_page_hostname. Days built before this migration are 1: the reader
-- answers exit pages only from days of version 2, and the rollups job rebuilds older days.
ALTER TABLE rollup_status ADD COLUMN version INTEGER DEFAULT 1;
