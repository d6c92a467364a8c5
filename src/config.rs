//! Connection settings: address, organization, token. (in progress)
