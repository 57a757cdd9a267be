//! What one instance of a component creates: its core instances and the tables they define.
//!
//! A tenant's `max_instances` and `max_tables` cap these per instance. Both are fixed by the
//! component's structure, so they are counted once, when the component is compiled, by
//! walking its binary: every core module instantiation, including those of nested components
//! (once per instantiation of the component that holds them), and the tables each
//! instantiated module defines. A request whose component exceeds a cap is refused before
//! instantiation, naming the cap — for the components toolchains build, the host decides which
//! limit refused instead of reading wasmtime's error text. The store's limiter enforces the
//! same caps underneath, and is the last word for the few shapes this count misses (see
//! [`Footprint::of`]).

use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind, ComponentTypeRef, Encoding,
    Instance, Parser, Payload,
};

use crate::limits::Limits;

/// The core instances and tables one instance of a component creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Core module instantiations.
    pub core_instances: usize,
    /// Tables the instantiated modules define (imported tables are not new).
    pub tables: usize,
}

/// The cap a [`Footprint`] exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// More core instances than `max_instances`.
    Instances,
    /// More tables than `max_tables`.
    Tables,
}

impl Footprint {
    /// Counts the footprint of the component (or core module) in `bytes`.
    ///
    /// Modules and components whose contents this component's binary does not name where it
    /// instantiates them (imported by a nested component from its parent, or taken from an
    /// instance's exports) count as empty, and so do the adapter modules wasmtime generates
    /// between the sub-components of a composed component: for those the store's limiter,
    /// which enforces the same caps, is the last word.
    pub fn of(bytes: &[u8]) -> Result<Self, wasmparser::BinaryReaderError> {
        // One scope per module or component being read, innermost last.
        let mut scopes: Vec<Scope> = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload?;
            match payload {
                Payload::Version { encoding, .. } => scopes.push(Scope::new(encoding == Encoding::Module)),
                Payload::End(_) => {
                    let Some(ended) = scopes.pop() else { continue };
                    let Some(parent) = scopes.last_mut() else { return Ok(ended.finish()) };
                    let kind = if ended.is_module { Kind::Module } else { Kind::Component };
                    parent.push(kind, ended.finish());
                }
                Payload::ComponentAliasSection(aliases) => {
                    for alias in aliases {
                        let (kind, found) = match alias? {
                            ComponentAlias::Outer { kind, count, index } => {
                                let Some(kind) = Kind::of_outer(kind) else { continue };
                                let outer = scopes.len().checked_sub(1 + count as usize).map(|at| &scopes[at]);
                                (kind, outer.and_then(|outer| outer.get(kind, index)))
                            }
                            ComponentAlias::InstanceExport { kind, .. } => {
                                let Some(kind) = Kind::of_export(kind) else { continue };
                                (kind, None)
                            }
                            ComponentAlias::CoreInstanceExport { .. } => continue,
                        };
                        if let Some(scope) = scopes.last_mut() {
                            scope.push(kind, found.unwrap_or_default());
                        }
                    }
                }
                payload => {
                    if let Some(scope) = scopes.last_mut() {
                        scope.read(payload)?;
                    }
                }
            }
        }
        Ok(scopes.pop().map(Scope::finish).unwrap_or_default())
    }

    /// The first cap of `limits` this footprint exceeds, if any.
    pub fn exceeds(&self, limits: &Limits) -> Option<Exceeded> {
        if self.core_instances > limits.max_instances {
            Some(Exceeded::Instances)
        } else if self.tables > limits.max_tables {
            Some(Exceeded::Tables)
        } else {
            None
        }
    }
}

impl std::ops::Add for Footprint {
    type Output = Footprint;

    fn add(self, other: Footprint) -> Footprint {
        Footprint {
            core_instances: self.core_instances.saturating_add(other.core_instances),
            tables: self.tables.saturating_add(other.tables),
        }
    }
}

/// An index space a scope tracks footprints for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Module,
    Component,
}

impl Kind {
    fn of_outer(kind: ComponentOuterAliasKind) -> Option<Kind> {
        match kind {
            ComponentOuterAliasKind::CoreModule => Some(Kind::Module),
            ComponentOuterAliasKind::Component => Some(Kind::Component),
            ComponentOuterAliasKind::CoreType | ComponentOuterAliasKind::Type => None,
        }
    }

    fn of_export(kind: ComponentExternalKind) -> Option<Kind> {
        match kind {
            ComponentExternalKind::Module => Some(Kind::Module),
            ComponentExternalKind::Component => Some(Kind::Component),
            _ => None,
        }
    }
}

/// A module or component being read: what it instantiates so far, and, for a component, the
/// footprints of the modules and components in its index spaces.
#[derive(Default)]
struct Scope {
    is_module: bool,
    /// What it instantiates itself (a module: the tables it defines).
    own: Footprint,
    modules: Vec<Footprint>,
    components: Vec<Footprint>,
}

impl Scope {
    fn new(is_module: bool) -> Self {
        Scope { is_module, ..Default::default() }
    }

    /// Takes in one section of this module or component.
    fn read(&mut self, payload: Payload) -> Result<(), wasmparser::BinaryReaderError> {
        match payload {
            Payload::TableSection(tables) => self.own.tables += tables.count() as usize,
            Payload::ComponentImportSection(imports) => {
                for import in imports {
                    match import?.ty {
                        ComponentTypeRef::Module(_) => self.push(Kind::Module, Footprint::default()),
                        ComponentTypeRef::Component(_) => self.push(Kind::Component, Footprint::default()),
                        _ => {}
                    }
                }
            }
            Payload::InstanceSection(instances) => {
                for instance in instances {
                    if let Instance::Instantiate { module_index, .. } = instance? {
                        self.own = self.own + self.get(Kind::Module, module_index).unwrap_or_default();
                    }
                }
            }
            Payload::ComponentInstanceSection(instances) => {
                for instance in instances {
                    if let ComponentInstance::Instantiate { component_index, .. } = instance? {
                        self.own = self.own + self.get(Kind::Component, component_index).unwrap_or_default();
                    }
                }
            }
            Payload::ComponentExportSection(exports) => {
                // Exporting a module or component gives it a new index.
                for export in exports {
                    let export = export?;
                    if let Some(kind) = Kind::of_export(export.kind) {
                        self.push(kind, self.get(kind, export.index).unwrap_or_default());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The footprint of one instantiation of what this scope defines.
    fn finish(self) -> Footprint {
        if self.is_module { Footprint { core_instances: 1, tables: self.own.tables } } else { self.own }
    }

    fn get(&self, kind: Kind, index: u32) -> Option<Footprint> {
        let space = match kind {
            Kind::Module => &self.modules,
            Kind::Component => &self.components,
        };
        space.get(index as usize).copied()
    }

    fn push(&mut self, kind: Kind, footprint: Footprint) {
        match kind {
            Kind::Module => self.modules.push(footprint),
            Kind::Component => self.components.push(footprint),
        }
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::Store;
    use wasmtime::component::{Component, Linker};

    use super::*;
    use crate::runtime::builtin;
    use crate::runtime::limiter::Limiter;

    /// A component of two modules (the second defining a table), instantiated three
    /// times, and a nested component of one module instantiation, instantiated three times:
    /// once by the root, and twice in a third component — through an outer alias of it and
    /// through that alias's export.
    const NESTED: &str = r#"
        (component
          (core module $plain)
          (core module $table (table 1 funcref))
          (core instance (instantiate $plain))
          (core instance (instantiate $table))
          (core instance (instantiate $table))
          (component $inner
            (core module $m (table 2 funcref))
            (core instance (instantiate $m)))
          (instance (instantiate $inner))
          (component $outer
            (alias outer 1 $inner (component $aliased))
            (instance (instantiate $aliased))
            (export $again "inner" (component $aliased))
            (instance (instantiate $again)))
          (instance (instantiate $outer)))
    "#;

    fn footprint(text: &str) -> Footprint {
        Footprint::of(&wat::parse_str(text).unwrap()).unwrap()
    }

    #[test]
    fn counts_every_instantiation_and_the_tables_it_defines() {
        assert_eq!(footprint(NESTED), Footprint { core_instances: 6, tables: 5 });
        // Defining without instantiating costs nothing; a lone core module is one instance.
        assert_eq!(footprint("(component (core module (table 1 funcref)))"), Footprint::default());
        assert_eq!(footprint("(module (table 1 funcref))"), Footprint { core_instances: 1, tables: 1 });
    }

    #[test]
    fn imported_tables_are_not_new() {
        let text = r#"
            (component
              (core module $defines (table (export "t") 1 funcref))
              (core module $imports (import "a" "t" (table 1 funcref)))
              (core instance $a (instantiate $defines))
              (core instance (instantiate $imports (with "a" (instance $a)))))
        "#;
        assert_eq!(footprint(text), Footprint { core_instances: 2, tables: 1 });
    }

    #[test]
    fn the_caps_it_exceeds_are_named() {
        let limits = |max_instances, max_tables| Limits { max_instances, max_tables, ..Default::default() };
        let nested = footprint(NESTED);
        assert_eq!(nested.exceeds(&limits(6, 5)), None);
        assert_eq!(nested.exceeds(&limits(5, 5)), Some(Exceeded::Instances));
        assert_eq!(nested.exceeds(&limits(6, 4)), Some(Exceeded::Tables));
    }

    /// The count agrees with what wasmtime enforces: at the cap instantiation succeeds, one
    /// below it wasmtime refuses. A miscount would let the host answer a limit error for a
    /// component that fits, or a plain failure for one that does not.
    #[tokio::test]
    async fn agrees_with_the_limits_wasmtime_enforces() {
        let engine = super::super::engine::new(4).unwrap();
        let linker = Linker::<Limiter>::new(&engine);
        let bytes = wat::parse_str(NESTED).unwrap();
        let component = Component::new(&engine, &bytes).unwrap();
        let counted = Footprint::of(&bytes).unwrap();
        let instantiate = async |max_instances, max_tables| {
            let limits = Limits { max_instances, max_tables, ..Default::default() };
            let mut store = Store::new(&engine, Limiter::new(&limits));
            store.limiter(|limiter| limiter);
            linker.instantiate_async(&mut store, &component).await.map(drop)
        };
        instantiate(counted.core_instances, counted.tables).await.expect("a component exactly at its caps runs");
        instantiate(counted.core_instances - 1, counted.tables).await.expect_err("one instance too many");
        instantiate(counted.core_instances, counted.tables - 1).await.expect_err("one table too many");
        // And for a real component: the built-in devices API.
        let devices = builtin::get("devices-api").unwrap();
        let compiled = Component::new(&engine, devices).unwrap();
        let required = compiled.resources_required().expect("the built-in imports no module");
        let counted = Footprint::of(devices).unwrap();
        assert_eq!(counted.tables, required.num_tables as usize);
        assert!(counted.core_instances >= 2, "{counted:?}");
    }
}
