//! What the shell's own functions (`help`, `plugins`) and the REPL need at
//! call time: the loaded plugins and the help index, kept beside the
//! runtime's [`Host`] (the engine's tag, which lets native functions call
//! closures later).

use std::sync::{Arc, OnceLock};

use rhai::{AST, Engine, NativeCallContext};

use super::{help::HelpIndex, plugins::Plugin};
use crate::runtime::closure::Host;

#[derive(Clone)]
pub struct Session {
    host: Host,
    data: Arc<Data>,
}

#[derive(Default)]
struct Data {
    plugins: OnceLock<Vec<Plugin>>,
    help: OnceLock<HelpIndex>,
}

impl Default for Session {
    fn default() -> Self {
        let host = Host::default();
        let data = Arc::new(Data::default());
        host.set_extension(data.clone());
        Session { host, data }
    }
}

impl Session {
    /// The session of the engine running this native call.
    pub fn of(ctx: &NativeCallContext) -> Option<Session> {
        let host = Host::of(ctx)?;
        let data = host.extension::<Data>()?;
        Some(Session { host, data })
    }

    /// The runtime's view of this session: the engine's default tag.
    pub fn host(&self) -> &Host {
        &self.host
    }

    pub(super) fn attach(&self, engine: &Arc<Engine>) {
        self.host.attach(engine);
    }

    pub(super) fn set_plugins(&self, plugins: Vec<Plugin>) {
        let _ = self.data.plugins.set(plugins);
    }

    /// Records the AST being run, so closures it defines can be called later.
    pub fn set_ast(&self, ast: &AST) {
        self.host.set_ast(ast);
    }

    pub fn plugins(&self) -> &[Plugin] {
        self.data.plugins.get().map_or(&[], Vec::as_slice)
    }

    pub fn help(&self) -> &HelpIndex {
        self.data
            .help
            .get_or_init(|| HelpIndex::build(self.plugins()))
    }
}
