//! The other sections: forbid, data, schedule, limits, delegation,
//! elevation, monitoring, credentials.

use jiff::tz::TimeZone;

use super::*;
use crate::cedar::ConditionShape;
use crate::glob::Glob;
use crate::manifest::node::Node;
use crate::manifest::units::parse_rate;
use crate::manifest::*;

impl Parser {
    pub(super) fn forbids(&mut self, node: &Node) -> Vec<Forbid> {
        let Some(items) = self.list(node, "forbid") else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                self.parsed(item, &index("forbid", i), Glob::tool)
                    .map(|name| Forbid {
                        name,
                        pos: item.pos,
                    })
            })
            .collect()
    }

    pub(super) fn data(&mut self, node: &Node) -> Vec<DataGrant> {
        let Some(items) = self.list(node, "data") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = index("data", i);
            let Some(f) = self.mapping(item, &path, DATA_KEYS) else {
                continue;
            };
            let resource = self
                .required(&f, "resource")
                .and_then(|n| self.parsed(n, &f.path("resource"), crate::resource::data_glob));
            let access = self.required(&f, "access").and_then(|n| {
                let p = f.path("access");
                let items = self.list(n, &p)?;
                let mut out = Vec::new();
                for (j, a) in items.iter().enumerate() {
                    out.push(self.access(a, &index(&p, j))?);
                }
                if out.is_empty() {
                    self.err(p, n.pos, "expected at least one access level");
                    return None;
                }
                Some(out)
            });
            if let (Some(resource), Some(access)) = (resource, access) {
                out.push(DataGrant {
                    resource,
                    access,
                    pos: item.pos,
                });
            }
        }
        out
    }

    pub(super) fn schedule(&mut self, node: &Node) -> Option<Schedule> {
        let f = self.mapping(node, "schedule", SCHEDULE_KEYS)?;
        let tz = self.required(&f, "timezone").and_then(|n| {
            let name = self.string(n, "schedule.timezone")?;
            match TimeZone::get(&name) {
                Ok(tz) => Some((tz, name)),
                Err(_) => {
                    self.err(
                        "schedule.timezone",
                        n.pos,
                        format!(
                            "`{name}` is not an IANA time zone (such as `Europe/Berlin` or `UTC`)"
                        ),
                    );
                    None
                }
            }
        });
        let windows = self.required(&f, "windows").and_then(|n| {
            let w = self.string_list(n, "schedule.windows", Window::parse)?;
            if w.is_empty() {
                self.err(
                    "schedule.windows",
                    n.pos,
                    "expected at least one window (an empty schedule would deny everything)",
                );
                return None;
            }
            Some(w)
        });
        let (timezone, timezone_name) = tz?;
        Some(Schedule {
            timezone,
            timezone_name,
            windows: windows?,
        })
    }

    pub(super) fn limits(&mut self, node: &Node) -> Limits {
        let Some(f) = self.mapping(node, "limits", LIMIT_KEYS) else {
            return Limits::default();
        };
        let rate = f
            .get("rate")
            .and_then(|n| self.parsed(n, "limits.rate", parse_rate));
        let mut budgets = Vec::new();
        if let Some(n) = f.get("budgets")
            && let Some(items) = self.list(n, "limits.budgets")
        {
            for (i, item) in items.iter().enumerate() {
                let path = index("limits.budgets", i);
                let Some(b) = self.mapping(item, &path, BUDGET_KEYS) else {
                    continue;
                };
                let arg = self
                    .required(&b, "arg")
                    .and_then(|n| self.string(n, &b.path("arg")));
                let max = self.required(&b, "max").and_then(|n| {
                    let m = self.int(n, &b.path("max"))?;
                    if m < 1 {
                        self.err(
                            b.path("max"),
                            n.pos,
                            format!(
                                "`{m}` must be a positive integer (amounts are in minor units)"
                            ),
                        );
                        return None;
                    }
                    Some(m)
                });
                let per = self
                    .required(&b, "per")
                    .and_then(|n| self.duration(n, &b.path("per")));
                let approval = match b.get("approval") {
                    Some(n) => self.budget_approval(n, &b.path("approval")).map(Some),
                    None => Some(None),
                };
                if let (Some(arg), Some(max), Some(per), Some(approval)) = (arg, max, per, approval)
                {
                    budgets.push(Budget {
                        arg,
                        max,
                        per,
                        approval,
                        pos: item.pos,
                    });
                }
            }
        }
        Limits { rate, budgets }
    }

    pub(super) fn delegation(&mut self, node: &Node) -> Delegation {
        let Some(f) = self.mapping(node, "delegation", DELEGATION_KEYS) else {
            return Delegation::default();
        };
        let to = f
            .get("to")
            .and_then(|n| {
                self.string_list(n, "delegation.to", |s| {
                    s.parse::<AgentId>().map_err(|e| e.to_string())
                })
            })
            .unwrap_or_default();
        let max_depth = f
            .get("max_depth")
            .and_then(|n| {
                let d = self.int(n, "delegation.max_depth")?;
                if !(1..=MAX_DELEGATION_DEPTH).contains(&d) {
                    self.err(
                        "delegation.max_depth",
                        n.pos,
                        format!("`{d}` is out of range: expected 1 to {MAX_DELEGATION_DEPTH}"),
                    );
                    return None;
                }
                u32::try_from(d).ok()
            })
            .unwrap_or(1);
        Delegation { to, max_depth }
    }

    pub(super) fn elevations(&mut self, node: &Node) -> Vec<ElevationSpec> {
        let Some(items) = self.list(node, "elevation") else {
            return Vec::new();
        };
        let mut out: Vec<ElevationSpec> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = index("elevation", i);
            let Some(f) = self.mapping(item, &path, ELEVATION_KEYS) else {
                continue;
            };
            let name = self.required(&f, "name").and_then(|n| {
                self.parsed(n, &f.path("name"), |s| {
                    s.parse::<AgentId>().map(|_| s.to_owned()).map_err(|_| {
                        format!(
                            "`{s}` is not a valid elevation name: lowercase letters, digits and `-`"
                        )
                    })
                })
            });
            if let Some(name) = &name
                && out.iter().any(|e| &e.name == name)
            {
                self.err(
                    f.path("name"),
                    item.pos,
                    format!("elevation `{name}` is defined twice"),
                );
            }
            let tools = self.required(&f, "tools").and_then(|n| {
                let t = self.string_list(n, &f.path("tools"), |s| {
                    Glob::tool(s).map_err(|e| e.to_string())
                })?;
                if t.is_empty() {
                    self.err(f.path("tools"), n.pos, "expected at least one tool");
                    return None;
                }
                Some(t)
            });
            let max_duration = self
                .required(&f, "max_duration")
                .and_then(|n| self.duration(n, &f.path("max_duration")));
            let approvers = self
                .required(&f, "approvers")
                .and_then(|n| self.approvers(n, &f.path("approvers")));
            let auto = f.get("auto_grant_when").and_then(|n| {
                self.condition(
                    n,
                    &f.path("auto_grant_when"),
                    Some(&ConditionShape::Elevation),
                )
            });
            if f.get("auto_grant_when").is_some() && auto.is_none() {
                continue;
            }
            if let (Some(name), Some(tools), Some(max_duration), Some(approvers)) =
                (name, tools, max_duration, approvers)
            {
                out.push(ElevationSpec {
                    name,
                    tools,
                    max_duration,
                    approvers,
                    auto_grant_when: auto,
                    pos: item.pos,
                });
            }
        }
        out
    }

    pub(super) fn monitoring(&mut self, node: &Node) -> Monitoring {
        let Some(f) = self.mapping(node, "monitoring", MONITORING_KEYS) else {
            return Monitoring::default();
        };
        Monitoring {
            log_retrievals: f
                .get("log_retrievals")
                .and_then(|n| self.bool(n, "monitoring.log_retrievals"))
                .unwrap_or(false),
            suspend_after_denials: f
                .get("suspend_after_denials")
                .and_then(|n| self.parsed(n, "monitoring.suspend_after_denials", parse_rate)),
        }
    }

    pub(super) fn credentials(&mut self, node: &Node) -> Credentials {
        let Some(f) = self.mapping(node, "credentials", CREDENTIAL_KEYS) else {
            return Credentials::default();
        };
        let token_ttl = f
            .get("token_ttl")
            .and_then(|n| {
                let d = self.duration(n, "credentials.token_ttl")?;
                if d > Credentials::MAX_TTL {
                    self.err(
                        "credentials.token_ttl",
                        n.pos,
                        format!(
                            "`{}` is too long: tokens live at most `1h`",
                            units::format_duration(d)
                        ),
                    );
                    return None;
                }
                Some(d)
            })
            .unwrap_or(Credentials::DEFAULT_TTL);
        let dpop_required = f
            .get("dpop")
            .and_then(|n| {
                self.parsed(n, "credentials.dpop", |s| match s {
                    "required" => Ok(true),
                    "optional" => Ok(false),
                    other => Err(format!(
                        "`{other}` is not a DPoP mode: expected `required` or `optional`"
                    )),
                })
            })
            .unwrap_or(false);
        Credentials {
            token_ttl,
            dpop_required,
        }
    }
}
