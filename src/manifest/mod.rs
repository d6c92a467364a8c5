//! Reading and validating a policy directory. (in progress)
