-- Upload session rows are written twice per blob; the table only holds uploads in
-- progress, so the collector's scan by age needs no index (kept in step with SQLite).
DROP INDEX blob_uploads_by_age;
