//! The Policies API client. (in progress)
