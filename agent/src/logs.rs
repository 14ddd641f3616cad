//! Container logs: CRI-format files with size-based rotation, and their readers.
