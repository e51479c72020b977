-- What a caller chose about a file beyond its format: the fields in their order and the CSV
-- options (delimiter, BOM, formula neutralisation). '{}' is the documented file.
ALTER TABLE exports ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
ALTER TABLE export_schedules ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
