//! The control socket (`berthd.sock`): the [`Launcher`] protocol, answered by forwarding
//! each request to the supervisor actor (metrics: by the scraper).

use std::sync::Arc;

use berth_ipc::launcher::{Launcher, LauncherRequest, LauncherResponse};
use berth_ipc::{Context, Error, Handler, Reply};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Scraper;
use crate::supervisor::Command;

/// Forwards control requests to the supervisor.
pub struct Control {
    commands: mpsc::Sender<Command>,
    scraper: Arc<Scraper>,
}

impl Control {
    /// A handler sending to the supervisor's command inbox and rendering metrics with
    /// `scraper`.
    pub fn new(commands: mpsc::Sender<Command>, scraper: Arc<Scraper>) -> Self {
        Control { commands, scraper }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| Error::unavailable("berthd is shutting down"))?;
        rx.await.map_err(|_| Error::unavailable("berthd is shutting down"))
    }
}

impl Handler<Launcher> for Control {
    async fn handle(&self, req: LauncherRequest, _ctx: Context) -> Reply<LauncherResponse> {
        let result = match req {
            LauncherRequest::List(_) => self.ask(Command::List).await.map(LauncherResponse::List),
            LauncherRequest::Restart(r) => self
                .ask(|tx| Command::Restart(r.name, tx))
                .await
                .and_then(|r| r)
                .map(LauncherResponse::Restart),
            LauncherRequest::Stop(r) => {
                self.ask(|tx| Command::Stop(r.name, tx)).await.and_then(|r| r).map(LauncherResponse::Stop)
            }
            LauncherRequest::Start(r) => {
                self.ask(|tx| Command::Start(r.name, tx)).await.and_then(|r| r).map(LauncherResponse::Start)
            }
            LauncherRequest::Metrics(_) => Ok(LauncherResponse::Metrics(self.scraper.render().await)),
        };
        Reply::Unary(result)
    }
}
