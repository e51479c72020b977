//! The scheduler: about once a minute (`SCHEDULE_INTERVAL`) it starts the runs of due backup
//! schedules. It lives in every worker process; the database makes each occurrence run
//! once however many tick (see [`crate::schedules`]).

use std::sync::Arc;

use super::Services;
use crate::schedules;

/// One tick with the services' clock.
pub async fn tick(services: &Services) -> Result<schedules::TickSummary, sqlx::Error> {
    let summary = schedules::tick(
        &services.pool,
        services.clock.now(),
        services.settings.export_max_attempts,
    )
    .await?;
    for format in &summary.formats {
        services.metrics.export_created(format.as_str(), "schedule");
    }
    Ok(summary)
}

/// Ticks every `schedule_interval` until `stop` turns true.
pub async fn run(services: Arc<Services>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(services.settings.schedule_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match tick(&services).await {
            Ok(summary) if summary == schedules::TickSummary::default() => {}
            Ok(summary) => tracing::info!(
                started = summary.started(),
                missed = summary.missed,
                failed = summary.failed,
                "scheduler tick"
            ),
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed; will retry"),
        }
    }
}
