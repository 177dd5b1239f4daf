//! Logs and, when configured, OpenTelemetry traces: `tracing` is set up
//! here once per process. Traces are exported over OTLP (HTTP/protobuf)
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is
//! not `true`); otherwise no exporter exists and the spans of
//! `bridle_server::telemetry::TARGET` are disabled where they are made.
//!
//! Export is off the request path: finished spans go to a bounded queue
//! that the batch processor's own thread sends; an unreachable collector
//! drops spans and logs a warning, and never slows or fails a decision.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use bridle_server::telemetry::TARGET;

/// The tracer provider, shut down (its queue flushed) when dropped. Drop
/// it outside the async runtime: the exporter's blocking client has its
/// own.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub(crate) fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: traces not all exported at exit: {e}");
        }
    }
}

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether the environment asks for OTLP export of traces.
pub(crate) fn configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Build the OTLP tracer provider: endpoint, headers, timeout from the
/// standard `OTEL_EXPORTER_OTLP_*` variables, the sampler from
/// `OTEL_TRACES_SAMPLER`, the service name from `OTEL_SERVICE_NAME` (else
/// `service`), resource attributes from `OTEL_RESOURCE_ATTRIBUTES`.
fn provider(service: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Logs to stderr (`BRIDLE_LOG` filter, JSON lines on request) and, when
/// [`configured`], spans to the OTLP collector as `service` (`bridle`,
/// `bridle-gateway`). Call before the async runtime starts.
pub(crate) fn init(json: bool, service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_env("BRIDLE_LOG")
        // rmcp logs every JSON-RPC error answer (each denial) as a warning.
        .unwrap_or_else(|_| EnvFilter::new("info,rmcp=error"));
    // The spans meant for OpenTelemetry never reach the log lines.
    let logs = filter.and(filter_fn(|m| m.target() != TARGET));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let provider = if configured() {
        match provider(service) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: OpenTelemetry export is off: {e}");
                None
            }
        }
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("bridle"))
            .with_filter(filter_fn(|m| m.target() == TARGET))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(logs))
        .with(otel)
        .try_init();
    Telemetry { provider }
}

/// Run `serve` until it ends or, when spans are exported, until SIGINT or
/// SIGTERM: the process then returns normally so [`Telemetry`] flushes.
pub(crate) async fn until_stopped<F>(telemetry: &Telemetry, serve: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    if !telemetry.exporting() {
        return serve.await;
    }
    tokio::select! {
        r = serve => r,
        () = stop_signal() => {
            tracing::info!("stopping: flushing traces");
            Ok(())
        }
    }
}

async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                () = interrupt => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    interrupt.await;
}
