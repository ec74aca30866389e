//! How a capability's `#[export_module(manifest)]` becomes a Rhai module,
//! with its functions' doc comments or without them.
//!
//! Rhai's code generator registers every function with its `///` text and
//! its parameter names copied into the module's metadata. Only `help()`
//! reads them, and it builds modules of its own; the engine scripts run in
//! never does. Copying them was a sixth of `netsh -e 1`'s start-up, so the
//! engine's modules are built from the same static manifest without them:
//! the same functions under the same hashes, called the same way, with
//! nothing copied but the name.

use rhai::plugin::{FnManifestEntry, ModuleManifest, RhaiFunc};
use rhai::{FuncRegistration, Module};

/// Whether a module keeps its functions' docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Docs {
    /// For `help()`: doc comments and parameter names, as Rhai's metadata
    /// shows them.
    Kept,
    /// For the engine: the functions alone.
    Left,
}

/// Adds the functions (and custom types and constants) of a plugin module,
/// from its manifest (`exported_manifest!(api)`), sub-modules flattened in,
/// to `module`. The engine's capabilities all go into one module: Rhai
/// looks a call up module by module, and a module built apart and then
/// flattened into another is every function registered twice (copying
/// them cost a tenth of `netsh -e 1`).
pub fn add(module: &mut Module, manifest: &'static ModuleManifest, docs: Docs) {
    match docs {
        Docs::Kept => {
            module.combine_manifest(manifest);
            module.register_lazy_functions();
        }
        Docs::Left => {
            manifest.for_each_fn(true, &mut |entry| register(module, entry));
            eager(module, manifest);
        }
    }
}

/// One function, as the generated code registers it less its metadata.
fn register(module: &mut Module, entry: &'static FnManifestEntry) {
    entry.with_param_types(&mut |types| {
        FuncRegistration::new(entry.name())
            .with_namespace(entry.namespace())
            .set_into_module_raw(module, types, RhaiFunc::StaticPlugin { func: entry.func() });
    });
}

/// Custom types and constants, which a manifest registers as they are.
fn eager(module: &mut Module, manifest: &'static ModuleManifest) {
    manifest.init_eager(module);
    for &(_, sub) in manifest.sub_modules() {
        eager(module, sub);
    }
}
