//! Process signals a service stops on.

/// Resolves when the process is asked to stop: SIGTERM (what Docker, Kubernetes and systemd
/// send) or SIGINT (Ctrl-C). Services wait on it, then shut their servers down gracefully:
///
/// ```no_run
/// # async fn serve(server: axion_runtime::kafka::ServerHandle) {
/// axion_runtime::shutdown_signal().await;
/// server.shutdown().await; // drains in-flight handlers, commits, leaves the group
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
