//! Shared helpers for kelp's end-to-end tests.
