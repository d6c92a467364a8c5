//! Reports. (in progress)
