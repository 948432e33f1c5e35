//! Unit tests
