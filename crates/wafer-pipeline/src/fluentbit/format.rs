//! Records rendered as Fluent Bit's outputs render them.
