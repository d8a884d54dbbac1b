//! Service-manager readiness (`OPS-7`): with `NOTIFY_SOCKET` set (systemd `Type=notify`), send
//! `READY=1` once the listener is bound and the ready line is printed, never before, and
//! `STOPPING=1` when shutdown begins. Without `NOTIFY_SOCKET` these do nothing.

/// Tells the service manager the gateway is ready. Call only after the bind (`LOCK-3`).
pub(crate) fn ready() {
    send(&[sd_notify::NotifyState::Ready]);
}

/// Tells the service manager the gateway is shutting down.
pub(crate) fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

fn send(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(err) = sd_notify::notify(false, state) {
        tracing::warn!("could not notify the service manager: {err}");
    }
}
