-- What an enhanced scan found installed in an image (JSON), so that a refresh of the
-- vulnerability data rescans it without reading its layers again.
ALTER TABLE scan_findings ADD COLUMN inventory TEXT;
