//! The reusable error responses of the document: every one
//! `application/problem+json` with the [`Problem`](crate::error::Problem)
//! schema; 401 and 429 also name their headers.

use utoipa::openapi::{Content, HeaderBuilder, Ref, RefOr, ResponseBuilder, response::Response};
use utoipa::{PartialSchema, ToResponse};

/// 429 says when to come back.
#[derive(Debug)]
pub(crate) struct TooManyRequests;

impl<'r> ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = problem(
            "Too many failed authentications from this source, or with this credential from it",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some("Seconds until the lock ends"))
                .build(),
        );
        ("TooManyRequests", response.build().into())
    }
}

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/problem+json",
        Content::new(Some(Ref::from_schema_name("Problem"))),
    )
}

macro_rules! problem_responses {
    ($($name:ident => $description:literal;)*) => {$(
        #[doc = $description]
        #[derive(Debug)]
        pub(crate) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description).build().into())
            }
        }
    )*};
}

problem_responses! {
    BadRequest => "Bad request: a malformed body or query (a duplicate JSON key or an integer no 64-bit type holds, each named in `errors`), a resource outside the resource grammar, or an inconsistent request";
    Forbidden => "The caller is authenticated but may not do this";
    NotFound => "No such resource";
    Conflict => "The resource exists already, or its state does not allow this";
    PayloadTooLarge => "The request body is larger than the configured limit";
    Invalid => "Validation failed; `errors` says where and why";
    Unavailable => "The store or the audit log cannot be written; nothing was done (fail closed)";
}

/// 401 also says how to authenticate.
#[derive(Debug)]
pub(crate) struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = problem(
            "Missing, malformed, expired, revoked or forged credentials (API key or access token)",
        )
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some("`Bearer`"))
                .build(),
        );
        ("Unauthorized", response.build().into())
    }
}
