//! What native functions need from the shell at call time: the engine and the
//! current AST (to call closures from other threads), the loaded plugins, and
//! the help index.
//!
//! A Rhai closure can only be called with the AST that defined it, and
//! `task`/`serve` call closures on threads of their own, long after the
//! native call returned. So the shell records the AST it is running here
//! before each evaluation, and the engine carries this `Session` as its
//! default tag, which every `NativeCallContext` can reach.

use std::sync::{Arc, OnceLock, RwLock, Weak};

use rhai::{AST, Dynamic, Engine, EvalAltResult, FnPtr, FuncArgs, NativeCallContext};

use super::{help::HelpIndex, plugins::Plugin};

#[derive(Clone, Default)]
pub struct Session(Arc<State>);

#[derive(Default)]
struct State {
    engine: OnceLock<Weak<Engine>>,
    ast: RwLock<Arc<AST>>,
    plugins: OnceLock<Vec<Plugin>>,
    help: OnceLock<HelpIndex>,
}

impl Session {
    /// The session of the engine running this native call.
    pub fn of(ctx: &NativeCallContext) -> Option<Session> {
        ctx.tag()?.clone().try_cast::<Session>()
    }

    pub(super) fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.0.engine.set(Arc::downgrade(engine));
    }

    pub(super) fn set_plugins(&self, plugins: Vec<Plugin>) {
        let _ = self.0.plugins.set(plugins);
    }

    /// Records the AST being run, so closures it defines can be called later.
    pub fn set_ast(&self, ast: &AST) {
        let mut functions_only = ast.clone_functions_only();
        functions_only.set_source(ast.source().unwrap_or_default());
        if let Ok(mut slot) = self.0.ast.write() {
            *slot = Arc::new(functions_only);
        }
    }

    /// The engine, if it is still alive.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.0.engine.get()?.upgrade()
    }

    /// The AST of what is running now (its functions, not its statements).
    pub fn ast(&self) -> Arc<AST> {
        self.0
            .ast
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|_| Arc::new(AST::empty()))
    }

    pub fn plugins(&self) -> &[Plugin] {
        self.0.plugins.get().map_or(&[], Vec::as_slice)
    }

    pub fn help(&self) -> &HelpIndex {
        self.0.help.get_or_init(|| HelpIndex::build(self.plugins()))
    }

    /// A closure ready to be called on another thread: it keeps the engine
    /// and the AST that defined it.
    pub fn closure(&self, f: FnPtr) -> Option<Closure> {
        Some(Closure {
            engine: self.engine()?,
            ast: self.ast(),
            f,
        })
    }
}

/// A Rhai closure plus what is needed to call it from any thread.
#[derive(Clone)]
pub struct Closure {
    engine: Arc<Engine>,
    ast: Arc<AST>,
    f: FnPtr,
}

impl Closure {
    pub fn call(&self, args: impl FuncArgs) -> Result<Dynamic, Box<EvalAltResult>> {
        self.f.call::<Dynamic>(&self.engine, &self.ast, args)
    }

    /// The source name of the code that defined the closure, for messages.
    pub fn source(&self) -> &str {
        self.ast.source().unwrap_or("script")
    }
}
