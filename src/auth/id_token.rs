//! Google ID tokens as Dialogflow sends them (`Authorization: Bearer <JWT>`), for the google-oidc
//! and cloud-run-iam modes.
//!
//! The token is split and checked by the shared RS256 machinery ([`super::jwt`]: size, segments,
//! `alg: RS256` pinned, `kid` in Google's key set, signature), its claims by [`super::claims`]
//! (issuer, lifetime, audience, allowed and verified email). One thing is particular to these
//! modes: a signature segment of `SIGNATURE_REMOVED_BY_GOOGLE` is what Cloud Run IAM leaves after
//! it verified the token. cloud-run-iam checks the claims of such a token and nothing else can;
//! google-oidc refuses it (`signature_stripped`), since anyone can write that string.
//!
//! Tokens that passed are remembered in a [`VerifiedTokens`] cache (see [`super::jwt`]) of
//! `AUTH_TOKEN_CACHE_SIZE` entries, with their caller's email, until they expire.
//!
//! Neither the token nor any part of it ever goes into an error message or a log.

use super::claims::{AgentClaims, Claims, Policy};
use super::jwt::{self, Rs256Verifier, VerifiedTokens};
use super::keys::KeyCache;
use super::settings::OidcConfig;
use super::{AuthError, Caller, SetupError};

/// What Cloud Run puts in place of the signature after verifying a token.
const STRIPPED_SIGNATURE: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// Verifies Google ID tokens and pins their caller.
#[derive(Debug)]
pub struct IdTokenVerifier {
    /// Claim checks (issuer, lifetime, audience, email).
    policy: Policy,
    /// Signatures against Google's keys.
    rs256: Rs256Verifier,
    /// Whether a token whose signature Cloud Run stripped is accepted on its claims
    /// (cloud-run-iam).
    accept_stripped: bool,
    /// Tokens that passed every check, with their caller's email.
    verified: VerifiedTokens<String>,
}

impl IdTokenVerifier {
    /// A verifier for `config`; starts the key cache (so it must run inside the tokio runtime).
    /// `accept_stripped` selects cloud-run-iam's behaviour.
    pub fn new(config: &OidcConfig, accept_stripped: bool) -> Result<Self, SetupError> {
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        Ok(IdTokenVerifier {
            policy: Policy {
                audiences: config.audiences.clone(),
                allowed_emails: config.allowed_emails.clone(),
                leeway,
            },
            rs256: Rs256Verifier::start(config.jwks.clone())?,
            accept_stripped,
            verified: VerifiedTokens::new(config.token_cache_size, leeway),
        })
    }

    /// The key cache (tests and diagnostics).
    pub fn keys(&self) -> &KeyCache {
        self.rs256.keys()
    }

    /// The caller of a token that passed every check before and has not expired: the raw bytes of
    /// the credential, not yet checked to be text (a hit means they were).
    pub async fn remembered(&self, token: &[u8]) -> Option<Caller> {
        let email = self.verified.get(token).await?;
        Some(Caller { email: Some(email) })
    }

    /// Verifies `token` (the Bearer credential) and returns its caller. (The server asks
    /// [`Self::remembered`] first with the header's bytes; this asks again only before the RSA
    /// verification, since a stripped token is never remembered.)
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let segments = jwt::split(token)?;
        if segments.signature == STRIPPED_SIGNATURE {
            if !self.accept_stripped {
                return Err(super::AuthFailure::SignatureStripped.into());
            }
            let claims: Claims = jwt::decode_segment(segments.payload)?;
            return Ok(caller(self.policy.check(&claims, jwt::unix_now())?));
        }
        if let Some(caller) = self.remembered(token.as_bytes()).await {
            return Ok(caller);
        }
        let claims: Claims = self.rs256.verify(token, segments).await?;
        let checked = self.policy.check(&claims, jwt::unix_now())?;
        self.verified
            .insert(token, checked.email.clone(), checked.exp)
            .await;
        Ok(caller(checked))
    }
}

fn caller(checked: AgentClaims) -> Caller {
    Caller {
        email: Some(checked.email),
    }
}
