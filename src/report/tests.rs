//! Unit tests of the report: selection, summary and rendering on hand-made records.
