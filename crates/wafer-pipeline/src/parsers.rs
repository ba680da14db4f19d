//! Parsers a Fluent Bit config names (`json`, `regex`), turning a line into a record.
