//! Classic `.conf` and YAML Fluent Bit configs, translated into pipelines.
