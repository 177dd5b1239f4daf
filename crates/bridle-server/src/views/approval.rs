//! Approvals and their votes, as the API shows them (`bridle_store::Approval`
//! without its key and the owner it was checked against).

use bridle_store as store;

use super::time::instant;
use serde::Serialize;
use utoipa::ToSchema;

/// A request for human approval of an action or an elevation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Approval {
    #[schema(example = "apr_3kq9Zt0bW1xe")]
    pub id: String,
    pub kind: ApprovalKind,
    pub agent: String,
    /// The tool name, or `elevation:NAME`.
    pub action: String,
    /// The arguments of the action (sensitive ones redacted).
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    #[schema(required = true)]
    pub resource: Option<String>,
    pub state: ApprovalState,
    /// `group:NAME` or a principal id.
    pub approvers: Vec<String>,
    pub min_approvals: i64,
    /// Whether the agent's owner may approve.
    pub allow_owner: bool,
    /// The elevation it grants (`kind: elevation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elevation_id: Option<String>,
    pub votes: Vec<Vote>,
    pub created_at: String,
    pub expires_at: String,
    /// For a pending change (`kind: change`), shown by `GET
    /// /v1/approvals/{id}`: the agent's decisions of the last 7 days
    /// replayed against the proposed manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<super::replay::ReplayView>,
}

impl From<store::Approval> for Approval {
    fn from(a: store::Approval) -> Self {
        // Every field, so a new one is a decision here: `key` and `owner`
        // are not shown.
        let store::Approval {
            id,
            kind,
            agent,
            key: _,
            action,
            args,
            resource,
            state,
            approvers,
            min_approvals,
            allow_owner,
            owner: _,
            elevation_id,
            votes,
            created_at,
            expires_at,
        } = a;
        Self {
            id: id.to_string(),
            kind: kind.into(),
            agent: agent.to_string(),
            action,
            args,
            resource,
            state: state.into(),
            approvers: approvers.iter().map(ToString::to_string).collect(),
            min_approvals,
            allow_owner,
            elevation_id: elevation_id.as_ref().map(ToString::to_string),
            votes: votes.into_iter().map(Vote::from).collect(),
            created_at: instant(created_at),
            expires_at: instant(expires_at),
            replay: None,
        }
    }
}

/// One approver's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Vote {
    pub principal: String,
    /// `approve` or `deny`.
    pub vote: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: String,
}

impl From<store::Vote> for Vote {
    fn from(v: store::Vote) -> Self {
        let store::Vote {
            principal,
            vote,
            comment,
            at,
        } = v;
        Self {
            principal: principal.to_string(),
            vote,
            comment,
            at: instant(at),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalKind {
    /// A decision's action waits for it.
    Action,
    /// A just-in-time elevation waits for it.
    Elevation,
    /// A proposed manifest change waits for it (change control); `args`
    /// holds `version`, `base_version`, `submitted_by`, `changes` and the
    /// `unified` diff.
    Change,
}

impl From<store::ApprovalKind> for ApprovalKind {
    fn from(k: store::ApprovalKind) -> Self {
        match k {
            store::ApprovalKind::Action => Self::Action,
            store::ApprovalKind::Elevation => Self::Elevation,
            store::ApprovalKind::Change => Self::Change,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
    Consumed,
    Cancelled,
}

impl From<store::ApprovalState> for ApprovalState {
    fn from(s: store::ApprovalState) -> Self {
        use store::ApprovalState as S;
        match s {
            S::Pending => Self::Pending,
            S::Approved => Self::Approved,
            S::Denied => Self::Denied,
            S::Expired => Self::Expired,
            S::Consumed => Self::Consumed,
            S::Cancelled => Self::Cancelled,
        }
    }
}

// The body of `GET /v1/approvals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
}

impl FromIterator<store::Approval> for ApprovalList {
    fn from_iter<I: IntoIterator<Item = store::Approval>>(rows: I) -> Self {
        Self {
            approvals: rows.into_iter().map(Approval::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(elevation_id: Option<&str>, comment: Option<&str>) -> store::Approval {
        let at = |s: &str| s.parse().unwrap_or_default();
        store::Approval {
            id: "apr_3kq9Zt0bW1xe".parse().unwrap(),
            kind: store::ApprovalKind::Action,
            agent: "procurement-bot".parse().unwrap(),
            key: "secret-approval-key".into(),
            action: "procurement.create_purchase_request".into(),
            args: serde_json::json!({"amount": 900}),
            resource: None,
            state: store::ApprovalState::Pending,
            approvers: vec!["group:finance-approvers".into()],
            min_approvals: 1,
            allow_owner: false,
            owner: "alice".parse().unwrap(),
            elevation_id: elevation_id.map(|e| e.parse().unwrap()),
            votes: vec![store::Vote {
                principal: "frank".parse().unwrap(),
                vote: "approve".into(),
                comment: comment.map(Into::into),
                at: at("2026-01-01T00:00:00Z"),
            }],
            created_at: at("2026-01-01T00:00:00Z"),
            expires_at: at("2026-01-02T00:00:00Z"),
        }
    }

    /// The view (every body and webhook payload) never shows the approval
    /// key or the owner it was checked against; its fields are the
    /// contract's.
    #[test]
    fn the_view_hides_key_and_owner() {
        let view = serde_json::to_value(Approval::from(row(None, None))).unwrap_or_default();
        assert_eq!(
            view,
            serde_json::json!({
                "id": "apr_3kq9Zt0bW1xe",
                "kind": "action",
                "agent": "procurement-bot",
                "action": "procurement.create_purchase_request",
                "args": {"amount": 900},
                "resource": null,
                "state": "pending",
                "approvers": ["group:finance-approvers"],
                "min_approvals": 1,
                "allow_owner": false,
                "votes": [{"principal": "frank", "vote": "approve", "at": "2026-01-01T00:00:00.000000Z"}],
                "created_at": "2026-01-01T00:00:00.000000Z",
                "expires_at": "2026-01-02T00:00:00.000000Z",
            })
        );
        let view = serde_json::to_value(Approval::from(row(Some("elv_1"), Some("fine"))))
            .unwrap_or_default();
        assert_eq!(view["elevation_id"], "elv_1");
        assert_eq!(view["votes"][0]["comment"], "fine");
    }

    /// Each state's JSON name is the one the store keeps and the `state=`
    /// filter of `GET /v1/approvals` parses.
    #[test]
    fn states_serialize_as_the_store_names_them() {
        use store::ApprovalState as S;
        for s in [
            S::Pending,
            S::Approved,
            S::Denied,
            S::Expired,
            S::Consumed,
            S::Cancelled,
        ] {
            let json = serde_json::to_value(ApprovalState::from(s)).ok();
            assert_eq!(json, Some(serde_json::Value::from(s.as_str())), "{s:?}");
        }
    }
}
