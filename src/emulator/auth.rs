//! Tokens and what they may do: user, team and organization tokens, access to organizations,
//! and the "Manage Policies" right.
//!
//! The service does not tell "no such organization" from "no access" from "no right": all are 404.
//! Only a missing or unknown token is told apart, as 401.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// What kind of principal a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    User,
    Team,
    Organization,
}

/// One token the emulator accepts. Its value never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The secret sent as `Authorization: Bearer <token>`.
    pub token: String,
    pub kind: TokenKind,
    /// Who the token acts for. The rate limit is per user, shared by all of a user's tokens,
    /// as on the real service; give tokens distinct users for independent buckets.
    pub user: String,
    /// Organizations the token may act on. Others answer 404.
    pub organizations: Vec<String>,
    /// The "Manage Policies" right: without it, create, upload, update and delete answer 404.
    pub may_manage_policies: bool,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &"<redacted>")
            .field("kind", &self.kind)
            .field("user", &self.user)
            .field("organizations", &self.organizations)
            .field("may_manage_policies", &self.may_manage_policies)
            .finish()
    }
}

impl TokenConfig {
    /// A user token (an owner: it may manage policies) acting on `organizations`.
    pub fn user<I, S>(token: impl Into<String>, user: impl Into<String>, organizations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TokenConfig {
            token: token.into(),
            kind: TokenKind::User,
            user: user.into(),
            organizations: organizations.into_iter().map(Into::into).collect(),
            may_manage_policies: true,
        }
    }

    /// A team token (with the "Manage Policies" right) acting on `organizations`. The team
    /// name is its rate-limit user.
    pub fn team<I, S>(token: impl Into<String>, team: impl Into<String>, organizations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TokenConfig {
            kind: TokenKind::Team,
            ..TokenConfig::user(token, team, organizations)
        }
    }

    /// An organization token for `organization`. Whether it may manage policies is the
    /// emulator's `organization_tokens_may_manage` knob (the seed says no).
    pub fn organization(token: impl Into<String>, organization: impl Into<String>) -> Self {
        let organization = organization.into();
        TokenConfig {
            kind: TokenKind::Organization,
            ..TokenConfig::user(token, format!("org:{organization}"), [organization])
        }
    }

    /// The same token without the "Manage Policies" right.
    pub fn without_manage_policies(mut self) -> Self {
        self.may_manage_policies = false;
        self
    }
}

/// Every token, by value.
#[derive(Debug)]
pub(crate) struct Tokens {
    by_value: HashMap<String, Arc<TokenConfig>>,
}

impl Tokens {
    pub(crate) fn new(tokens: Vec<TokenConfig>) -> Self {
        let mut t = Tokens {
            by_value: HashMap::new(),
        };
        for token in tokens {
            t.add(token);
        }
        t
    }

    pub(crate) fn add(&mut self, token: TokenConfig) {
        self.by_value.insert(token.token.clone(), Arc::new(token));
    }

    /// Who sent the request: `Ok(None)` with no `Authorization` header, `Err` for a header that
    /// is not a known bearer token.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<TokenConfig>>, Unknown> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| Unknown)?;
        let (scheme, token) = value.split_once(' ').ok_or(Unknown)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Unknown);
        }
        self.by_value
            .get(token.trim())
            .cloned()
            .map(Some)
            .ok_or(Unknown)
    }
}

/// The request carried an `Authorization` header the service does not accept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unknown;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub token: Arc<TokenConfig>,
}

impl Caller {
    /// May the caller read the policies of `org`?
    pub(crate) fn may_read(&self, org: &str) -> bool {
        self.token.organizations.iter().any(|o| o == org)
    }

    /// May the caller create, upload, update or delete policies in `org`?
    pub(crate) fn may_manage(&self, org: &str, organization_tokens_may_manage: bool) -> bool {
        let kind_allowed = match self.token.kind {
            TokenKind::User | TokenKind::Team => true,
            TokenKind::Organization => organization_tokens_may_manage,
        };
        kind_allowed && self.token.may_manage_policies && self.may_read(org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_looked_up_exactly() {
        let t = Tokens::new(vec![TokenConfig::user("abc", "u", ["org"])]);
        assert!(t.authenticate(&headers("Bearer abc")).unwrap().is_some());
        assert!(t.authenticate(&headers("bearer abc")).unwrap().is_some());
        assert!(t.authenticate(&headers("Bearer abd")).is_err());
        assert!(t.authenticate(&headers("Basic abc")).is_err());
        assert!(t.authenticate(&headers("abc")).is_err());
        assert!(t.authenticate(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = TokenConfig::user("s3cr3t-value", "u", ["org"]);
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn organization_tokens_manage_only_when_allowed() {
        let caller = Caller {
            token: Arc::new(TokenConfig::organization("t", "org")),
        };
        assert!(caller.may_read("org"));
        assert!(!caller.may_manage("org", false));
        assert!(caller.may_manage("org", true));
        assert!(!caller.may_manage("other", true));
    }

    #[test]
    fn the_manage_policies_right_is_needed_to_manage() {
        let caller = Caller {
            token: Arc::new(TokenConfig::team("t", "team", ["org"]).without_manage_policies()),
        };
        assert!(caller.may_read("org"));
        assert!(!caller.may_manage("org", true));
    }
}
