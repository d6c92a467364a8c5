//! In-memory Policies API emulator. (in progress)
