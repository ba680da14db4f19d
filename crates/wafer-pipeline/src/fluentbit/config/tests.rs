//! Tests of the Fluent Bit config reader and translator.
