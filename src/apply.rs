//! Executes a plan against the service. (in progress)
