//! The compliance report as Markdown and as a self-contained HTML page
//! (inline CSS and SVG charts, no script, no external resource), rendered
//! with askama templates (`templates/report.md`, `templates/report.html`)
//! from the very [`ComplianceReport`] the JSON format is.

use askama::Template;

use crate::charts;
use crate::service::findings::Severity;
use crate::service::report::controls::Status;
use crate::views::report::{AgentReport, ComplianceReport, ControlResult, DayView};

/// A report that could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the report template failed: {0}")]
    Template(#[from] askama::Error),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
}

/// The report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Html,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "md" | "markdown" => Some(Self::Markdown),
            "html" => Some(Self::Html),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

/// What the templates of both formats share: small formatting helpers.
trait Helpers {
    fn opt(&self, v: &Option<u64>) -> String {
        v.map_or_else(|| "-".into(), |v| v.to_string())
    }

    fn opt_str(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_else(|| "-".into())
    }

    /// Seconds as people read them: `42s`, `3m 20s`, `2h 5m`.
    fn seconds(&self, v: &Option<i64>) -> String {
        match *v {
            None => "-".into(),
            Some(s) if s < 60 => format!("{s}s"),
            Some(s) if s < 3600 => format!("{}m {}s", s / 60, s % 60),
            Some(s) => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        }
    }

    fn status_text(&self, s: &Status) -> &'static str {
        match s {
            Status::Satisfied => "satisfied",
            Status::NotSatisfied => "not satisfied",
            Status::NotAssessed => "not assessed",
        }
    }

    fn status_class(&self, s: &Status) -> &'static str {
        s.as_str()
    }

    fn severity(&self, s: &Severity) -> &'static str {
        match s {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    /// The days of the window with any decision.
    fn active_days<'a>(&self, a: &'a AgentReport) -> Vec<&'a DayView> {
        a.evidence
            .activity
            .iter()
            .filter(|d| d.allow + d.deny + d.approval_required > 0)
            .collect()
    }
}

#[derive(Template)]
#[template(path = "report.md", escape = "none")]
struct Markdown<'a> {
    r: &'a ComplianceReport,
}

impl Helpers for Markdown<'_> {}

impl Markdown<'_> {
    /// Text for a table cell: no line breaks, `|` escaped.
    fn cell(text: &str) -> String {
        text.replace('\n', " ").replace('|', "\\|")
    }

    fn status(&self, s: &Status) -> &'static str {
        match s {
            Status::Satisfied => "satisfied",
            Status::NotSatisfied => "**not satisfied**",
            Status::NotAssessed => "not assessed",
        }
    }

    fn control_evidence(&self, c: &ControlResult) -> String {
        if !c.findings.is_empty() {
            let open: Vec<String> = c
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "`{}` ({}): {}",
                        f.code.as_str(),
                        self.severity(&f.severity),
                        Self::cell(&f.detail)
                    )
                })
                .collect();
            return open.join("; ");
        }
        if c.rules.is_empty() {
            return "no rule of Bridle checks this control".into();
        }
        let rules: Vec<String> = c
            .rules
            .iter()
            .map(|r| format!("`{}`", r.as_str()))
            .collect();
        format!("checked by {}; none open", rules.join(", "))
    }
}

/// The SVG charts of one agent (`None` where there is nothing to draw).
#[derive(Debug, Clone, Default)]
struct AgentCharts {
    activity: Option<String>,
    outcomes: Option<String>,
    denials: Option<String>,
    latency: Option<String>,
}

fn counts(map: &std::collections::BTreeMap<String, i64>) -> Vec<(String, f64)> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a count drawn as a bar: exact far beyond any count a chart shows"
    )]
    map.iter().map(|(k, v)| (k.clone(), *v as f64)).collect()
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts drawn as bars: exact far beyond any count a chart shows"
)]
fn agent_charts(a: &AgentReport) -> Result<AgentCharts, RenderError> {
    let e = &a.evidence;
    let days: Vec<String> = e.activity.iter().map(|d| d.date.clone()).collect();
    let series = [
        (
            "allow",
            e.activity
                .iter()
                .map(|d| d.allow as f64)
                .collect::<Vec<_>>(),
        ),
        (
            "deny",
            e.activity.iter().map(|d| d.deny as f64).collect::<Vec<_>>(),
        ),
        (
            "approval_required",
            e.activity
                .iter()
                .map(|d| d.approval_required as f64)
                .collect::<Vec<_>>(),
        ),
    ];
    let latency: Vec<(String, f64)> = e
        .approvals
        .latency_histogram
        .iter()
        .map(|b| (b.bucket.to_owned(), b.count as f64))
        .collect();
    Ok(AgentCharts {
        activity: charts::stacked_bars("Decisions per day", &days, &series)?,
        outcomes: charts::bars("Decisions by outcome", "decisions", &counts(&e.decisions))?,
        denials: charts::ranked_bars("Denials by reason", "denials", &counts(&e.denials))?,
        latency: charts::bars("Approval latency", "approvals", &latency)?,
    })
}

#[derive(Template)]
#[template(path = "report.html")]
struct Html<'a> {
    r: &'a ComplianceReport,
    charts: Vec<AgentCharts>,
}

impl Helpers for Html<'_> {}

impl Html<'_> {
    fn rows(&self) -> Vec<(&AgentReport, &AgentCharts)> {
        self.r.agents.iter().zip(self.charts.iter()).collect()
    }
}

/// The report as Markdown.
pub fn markdown(r: &ComplianceReport) -> Result<String, RenderError> {
    Ok(Markdown { r }.render()?)
}

/// The report as one self-contained HTML page.
pub fn html(r: &ComplianceReport) -> Result<String, RenderError> {
    let charts = r
        .agents
        .iter()
        .map(agent_charts)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Html { r, charts }.render()?)
}

#[cfg(test)]
mod tests;
