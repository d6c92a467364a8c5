//! One reconcile. (in progress)
