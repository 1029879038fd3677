-- Each attempt's duration (request sent to response read), in milliseconds; NULL for
-- the attempts logged before it was recorded.
ALTER TABLE attempts ADD COLUMN duration_ms double precision;
