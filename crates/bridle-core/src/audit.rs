//! Audit record format (filled in below).
