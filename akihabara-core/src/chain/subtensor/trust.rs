//! What the node's metadata may not decide: the bytes the client signs, and
//! how deep the values it decodes may nest.
//!
//! The client reads the runtime's metadata from the node it is pointed at
//! (subxt's dynamic API) and encodes and decodes against it. A node that lies
//! in that metadata could otherwise:
//!
//! - **choose what a key signs.** A call's pallet index, call index and
//!   argument types all come from the metadata, so a node could make the
//!   hotkey (or, for `burned_register`, the coldkey) sign bytes that mean
//!   another call on the real chain. Every call the client signs is therefore
//!   pinned ([`PINNED_CALLS`]): its pallet and call index, and subxt's shape
//!   hash of its arguments (names and types, recursively), as in every
//!   subtensor runtime this release knows (Finney spec 393 and the local test
//!   runtime, spec 293, agree on all of them). A runtime upgrade that changes
//!   one is refused with [`ChainError::UntrustedMetadata`] until the operator
//!   updates akihabara or opts in ([`SubtensorOptions::sign_unpinned_calls`]).
//! - **abort the process.** Decoding follows the type graph: a type that
//!   contains itself (a struct whose one field is itself), or a chain of
//!   types nested a million deep, recurses until the stack overflows, which
//!   aborts the process; a supervisor's restart connects to the same node.
//!   Before anything is decoded (a storage value, a runtime API's answer, the
//!   events of a block the client submitted to), the types reachable from it
//!   must be acyclic and at most [`MAX_TYPE_DEPTH`] deep. In both known runtimes
//!   the deepest is 7.
//!
//! The values themselves (balances, stakes, axons) remain the node's word.
//!
//! [`SubtensorOptions::sign_unpinned_calls`]: super::SubtensorOptions::sign_unpinned_calls

use std::collections::{HashMap, HashSet};

use scale_info::form::PortableForm;
use scale_info::{PortableRegistry, Type, TypeDef};
use subxt::Metadata;

use super::requirements::Need;
use crate::chain::ChainError;

/// How deep the types of anything the client decodes may nest.
pub const MAX_TYPE_DEPTH: u32 = 64;

/// A call the client signs, as the known runtimes define it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedCall {
    /// Pallet name.
    pub pallet: &'static str,
    /// Call name.
    pub call: &'static str,
    /// The pallet's call index (the extrinsic's first byte).
    pub pallet_index: u8,
    /// The call's index in its pallet (the second byte).
    pub call_index: u8,
    /// subxt-metadata's `call_hash`, hex: argument names and types.
    pub shape: &'static str,
}

const fn pin(call: &'static str, call_index: u8, shape: &'static str) -> PinnedCall {
    PinnedCall {
        pallet: "SubtensorModule",
        call,
        pallet_index: 7,
        call_index,
        shape,
    }
}

/// Every call the client signs, pinned. `commit_crv3_weights` is only in
/// the older runtime (spec 293); the timelocked commits only in the newer.
pub const PINNED_CALLS: &[PinnedCall] = &[
    pin(
        "set_weights",
        0,
        "1a71fde8a93d0966c793940af826200d8dc70b28eee9387d9cd5e0f4485dc33e",
    ),
    pin(
        "serve_axon",
        4,
        "73c08c3c3b4a23b98ee0a679870df73698b277b083167df1a2aeee23f5fefecd",
    ),
    pin(
        "burned_register",
        7,
        "42b653b96d308858c6133684f51cf3b16e0b766d11bcdd5ed84800659b578cfb",
    ),
    pin(
        "commit_weights",
        96,
        "e440c0098237b3e33767ad2627eefa4f98919eb728f2d3ec454d2fc18ce6f041",
    ),
    pin(
        "reveal_weights",
        97,
        "64c8c920f97d283106a5ffc258690da25f03445cb3ac9c8785bd6b8cc671a46c",
    ),
    pin(
        "commit_crv3_weights",
        99,
        "da9b8468047e1cab31715b43a73112651c57bf318960c27046c247316b95973f",
    ),
    pin(
        "commit_timelocked_weights",
        113,
        "b6972dd97f618802632ce4de3bfa34e77c936fccf98b5e62e64ba5b9655835a8",
    ),
    pin(
        "commit_timelocked_mechanism_weights",
        118,
        "90bfb3886ed518a641b3a23c78556bff6309cbd3cbf41c4dcf39d46bfba9ba03",
    ),
];

/// Checks what `needs` will sign and decode against `metadata`: every type
/// reachable from a decoded value is acyclic and at most [`MAX_TYPE_DEPTH`]
/// deep, and every call matches its pin (unless `sign_unpinned`, which only
/// warns). Run before the operation, after the names are known to exist
/// ([`super::requirements::require`]).
pub fn check(metadata: &Metadata, needs: &[Need], sign_unpinned: bool) -> Result<(), ChainError> {
    let mut depths = Depths::new(metadata.types());
    for need in needs {
        match *need {
            Need::Call(pallet, call, _) => {
                // The arguments' types are hashed (recursively) for the pin.
                let fields = metadata
                    .pallet_by_name(pallet)
                    .and_then(|p| p.call_variant_by_name(call))
                    .map(|v| v.fields.iter().map(|f| f.ty.id).collect::<Vec<_>>())
                    .unwrap_or_default();
                for ty in fields {
                    depths.check(ty, need)?;
                }
                check_pin(metadata, pallet, call, sign_unpinned)?;
                // Submitting waits for the block's events and decodes them.
                depths.check(metadata.outer_enums().event_enum_ty(), need)?;
                if let Some(events) = metadata
                    .pallet_by_name("System")
                    .and_then(|p| p.storage())
                    .and_then(|s| s.entry_by_name("Events"))
                {
                    depths.check(events.value_ty(), need)?;
                }
            }
            Need::Storage(pallet, entry) => storage(&mut depths, metadata, pallet, entry, need)?,
            Need::Api(api, method) => {
                if let Some(m) = metadata
                    .runtime_api_trait_by_name(api)
                    .and_then(|t| t.method_by_name(method))
                {
                    depths.check(m.output_ty(), need)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks the value and key types of a storage entry the client is about to
/// read (see [`check`]); an entry the runtime lacks passes (reading it finds
/// nothing to decode).
pub fn check_storage(metadata: &Metadata, pallet: &str, entry: &str) -> Result<(), ChainError> {
    let what = format!("storage {pallet}.{entry}");
    storage(
        &mut Depths::new(metadata.types()),
        metadata,
        pallet,
        entry,
        &what,
    )
}

fn storage(
    depths: &mut Depths<'_>,
    metadata: &Metadata,
    pallet: &str,
    entry: &str,
    what: &dyn std::fmt::Display,
) -> Result<(), ChainError> {
    if let Some(e) = metadata
        .pallet_by_name(pallet)
        .and_then(|p| p.storage())
        .and_then(|s| s.entry_by_name(entry))
    {
        depths.check(e.value_ty(), what)?;
        for key in e.keys() {
            depths.check(key.key_id, what)?;
        }
    }
    Ok(())
}

/// Checks one type the client is about to decode (see [`check`]).
pub fn check_type(metadata: &Metadata, ty: u32, what: &str) -> Result<(), ChainError> {
    Depths::new(metadata.types()).check(ty, &what).map(drop)
}

fn check_pin(
    metadata: &Metadata,
    pallet: &str,
    call: &str,
    sign_unpinned: bool,
) -> Result<(), ChainError> {
    let Some(pin) = PINNED_CALLS
        .iter()
        .find(|p| p.pallet == pallet && p.call == call)
    else {
        return Err(ChainError::UntrustedMetadata(format!(
            "call {pallet}.{call} has no pin in this release"
        )));
    };
    let p = metadata.pallet_by_name(pallet);
    let seen = (
        p.as_ref().map(|p| p.call_index()),
        p.as_ref()
            .and_then(|p| p.call_variant_by_name(call))
            .map(|v| v.index),
        p.as_ref().and_then(|p| p.call_hash(call)).map(hex::encode),
    );
    if seen.0 == Some(pin.pallet_index)
        && seen.1 == Some(pin.call_index)
        && seen.2.as_deref() == Some(pin.shape)
    {
        return Ok(());
    }
    let said = format!(
        "pallet {}, call {}, shape {}",
        seen.0.map_or("none".into(), |i| i.to_string()),
        seen.1.map_or("none".into(), |i| i.to_string()),
        seen.2.as_deref().map_or("none", |h| &h[..16.min(h.len())]),
    );
    let known = format!(
        "pallet {}, call {}, shape {}",
        pin.pallet_index,
        pin.call_index,
        &pin.shape[..16]
    );
    if sign_unpinned {
        tracing::warn!(
            call = %format!("{pallet}.{call}"),
            node = %said,
            known = %known,
            "signing a call whose index or shape differs from every runtime this release knows, \
             as sign_unpinned_calls allows"
        );
        return Ok(());
    }
    Err(ChainError::UntrustedMetadata(format!(
        "the node's metadata puts call {pallet}.{call} at {said}; every runtime this release \
         knows has {known}. A runtime upgrade may have changed it (update akihabara) or the node \
         is lying about it: nothing was signed. To sign it anyway, trusting this node, set \
         `sign_unpinned_calls` (the CLI's --sign-unpinned-calls, or \
         `sign_unpinned_calls = true` under [chain])"
    )))
}

/// The nesting depth of types, memoized across roots.
struct Depths<'a> {
    types: &'a PortableRegistry,
    done: HashMap<u32, u32>,
}

impl<'a> Depths<'a> {
    fn new(types: &'a PortableRegistry) -> Depths<'a> {
        Depths {
            types,
            done: HashMap::new(),
        }
    }

    /// An error unless `root` is acyclic and at most [`MAX_TYPE_DEPTH`]
    /// deep. Iterative: the check itself cannot overflow the stack.
    fn check(&mut self, root: u32, what: &dyn std::fmt::Display) -> Result<u32, ChainError> {
        if let Some(d) = self.done.get(&root) {
            return Ok(*d);
        }
        let untrusted = |why: String| {
            ChainError::UntrustedMetadata(format!("{what}: the node's metadata {why}"))
        };
        let types = self.types;
        let frame = |id: u32| -> Result<Frame, ChainError> {
            let ty = types
                .resolve(id)
                .ok_or_else(|| untrusted(format!("names type {id}, which it does not define")))?;
            Ok(Frame {
                id,
                children: children(ty),
                next: 0,
                depth: 1,
            })
        };
        let mut stack = vec![frame(root)?];
        let mut open: HashSet<u32> = HashSet::from([root]);
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(0);
            };
            let Some(&child) = top.children.get(top.next) else {
                let (id, depth) = (top.id, top.depth);
                stack.pop();
                open.remove(&id);
                self.done.insert(id, depth);
                match stack.last_mut() {
                    Some(parent) => parent.depth = parent.depth.max(depth + 1),
                    None => return Ok(depth),
                }
                continue;
            };
            top.next += 1;
            if open.contains(&child) {
                return Err(untrusted(format!(
                    "describes type {child} as containing itself, which no decoder can end"
                )));
            }
            // The types on the stack, down to `top`: `child` would be one more.
            let above = stack.len() as u32;
            if let Some(&d) = self.done.get(&child) {
                if above + d > MAX_TYPE_DEPTH {
                    return Err(too_deep(&untrusted));
                }
                if let Some(top) = stack.last_mut() {
                    top.depth = top.depth.max(d + 1);
                }
                continue;
            }
            if above >= MAX_TYPE_DEPTH {
                return Err(too_deep(&untrusted));
            }
            stack.push(frame(child)?);
            open.insert(child);
        }
    }
}

/// A type being walked: its children, the next to visit, and 1 + the
/// deepest child seen so far.
struct Frame {
    id: u32,
    children: Vec<u32>,
    next: usize,
    depth: u32,
}

fn too_deep(untrusted: &dyn Fn(String) -> ChainError) -> ChainError {
    untrusted(format!(
        "nests types more than {MAX_TYPE_DEPTH} deep (subtensor's deepest is 7)"
    ))
}

/// The types a value of `ty` contains, which decoding visits.
fn children(ty: &Type<PortableForm>) -> Vec<u32> {
    match &ty.type_def {
        TypeDef::Composite(c) => c.fields.iter().map(|f| f.ty.id).collect(),
        TypeDef::Variant(v) => v
            .variants
            .iter()
            .flat_map(|v| v.fields.iter().map(|f| f.ty.id))
            .collect(),
        TypeDef::Sequence(s) => vec![s.type_param.id],
        TypeDef::Array(a) => vec![a.type_param.id],
        TypeDef::Tuple(t) => t.fields.iter().map(|f| f.id).collect(),
        TypeDef::Primitive(_) => Vec::new(),
        TypeDef::Compact(c) => vec![c.type_param.id],
        TypeDef::BitSequence(b) => vec![b.bit_store_type.id, b.bit_order_type.id],
    }
}

#[cfg(test)]
mod tests;
