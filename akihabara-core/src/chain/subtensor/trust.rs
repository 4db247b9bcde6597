//! What the node's metadata may not decide: what the client signs,
//! and how deep and how long the values it encodes and decodes run.
//!
//! The client reads the runtime's metadata from the node it is pointed at
//! (subxt's dynamic API) and encodes and decodes against it. A node that lies
//! in that metadata could otherwise:
//!
//! - **choose the call a key signs.** A call's pallet index, call index and
//!   argument types all come from the metadata, so a node could make the
//!   hotkey (or, for `burned_register`, the coldkey) sign bytes that mean
//!   another call on the real chain. Every call the client signs is therefore
//!   pinned ([`PINNED_CALLS`]): its pallet and call index, and subxt's shape
//!   hash of its arguments (names and types, recursively; argument order is
//!   checked by name in [`super::requirements`]), as the subtensor runtimes
//!   this release knows define it (Finney, spec 393, and the local test
//!   runtime, spec 293, agree on the five calls both have). Before
//!   signing, the call's bytes must also be exactly the pinned indices and
//!   the arguments as this release encodes them ([`check_call_bytes`]): the
//!   shape hash ignores field order and variant indices. A call that
//!   differs is refused with [`ChainError::UntrustedMetadata`] until the
//!   operator updates akihabara or opts in
//!   ([`SubtensorOptions::sign_unpinned_calls`]).
//! - **choose the rest of what a key signs.** After the call come the
//!   transaction extensions' values, in the order and with the types the
//!   metadata gives: swapping two would have the real chain read a nonce as
//!   a tip. Signing needs V4 extrinsics and a known runtime's extension
//!   layout ([`KNOWN_EXTENSION_LAYOUTS`], [`check_extensions`]).
//! - **abort the process, or keep a thread busy.** Decoding and encoding
//!   follow the type graph: a type that contains itself (a struct whose one
//!   field is itself), or a chain of types nested a million deep, recurses
//!   until the stack overflows, which aborts the process, and a supervisor's
//!   restart connects to the same node. A list of empty structs makes a
//!   decoder count to the 2^62 its few length bytes claim; an enum listing
//!   millions of variants is scanned for each index. So, before the client
//!   decodes or encodes a value (a storage value, a runtime API's inputs and
//!   answer, a transaction's extensions, every pallet's events and the
//!   dispatch error of a block it submitted to), the types reachable from it
//!   must be acyclic, at most [`MAX_TYPE_DEPTH`] deep (both known runtimes:
//!   7), have no list of elements that take no bytes and no enum index
//!   listed twice, and take at most about [`MAX_VISITS`] steps beyond what
//!   their bytes pay for and about [`MAX_VISITS_PER_BYTE`] per byte (the
//!   bound is approximate: a compact inside single-field structs costs a few
//!   steps more). Types the client cannot name (the extrinsic's address and
//!   signature) are covered by a check of the whole registry: following
//!   structs, tuples, arrays and compacts, which encode nothing of their
//!   own, no type reaches itself or nests deeper than [`MAX_TYPE_DEPTH`].
//!   Answers are decoded into typed values only: a dynamic value reserves a
//!   list's claimed length before reading it. A panic of subxt on bad
//!   metadata becomes an error where the client builds its views of a block.
//!
//! The genesis hash a signature commits to also comes from the node: a node
//! reached as `finney` or `test` (or at their public endpoints) must have
//! that network's ([`super::Network::genesis`]); a local node or another URL
//! may be any chain, so a node there that answers as Finney obtains
//! signatures valid on Finney. The nonce and era, and the values themselves
//! (balances, stakes, axons), remain the node's word.
//!
//! [`SubtensorOptions::sign_unpinned_calls`]: super::SubtensorOptions::sign_unpinned_calls

use std::collections::{HashMap, HashSet};

use scale_info::form::PortableForm;
use scale_info::{PortableRegistry, Type, TypeDef};
use subxt::Metadata;

use super::requirements::Need;
use crate::chain::ChainError;

/// How deep the types of anything the client decodes may nest. A value
/// this deep decodes on half of a 2 MiB thread stack in a debug build
/// (tested).
pub const MAX_TYPE_DEPTH: u32 = 32;

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

/// Checks what `needs` will sign and decode against `metadata` (see the
/// module docs): the types reachable from every value decoded or encoded
/// are bounded ([`MAX_TYPE_DEPTH`], [`MAX_VISITS`], no cycles, no lists of
/// elements that take no bytes), no chain of structs in the whole registry
/// is cyclic or deeper than [`MAX_TYPE_DEPTH`], and every call matches its
/// pin (unless `sign_unpinned`, which only warns). Run before the
/// operation, after the names are known to exist
/// ([`super::requirements::require`]).
pub fn check(metadata: &Metadata, needs: &[Need], sign_unpinned: bool) -> Result<(), ChainError> {
    structure(metadata)?;
    let mut depths = Depths::new(metadata.types());
    for need in needs {
        match *need {
            Need::Call(pallet, call, _) => {
                // The arguments are encoded, and hashed (recursively) for the pin.
                let fields = metadata
                    .pallet_by_name(pallet)
                    .and_then(|p| p.call_variant_by_name(call))
                    .map(|v| v.fields.iter().map(|f| f.ty.id).collect::<Vec<_>>())
                    .unwrap_or_default();
                for ty in fields {
                    depths.check(ty, need)?;
                }
                check_pin(metadata, pallet, call, sign_unpinned)?;
                signing(&mut depths, metadata, need)?;
                check_extensions(metadata, sign_unpinned)?;
                events(&mut depths, metadata, need)?;
            }
            Need::Storage(pallet, entry) => storage(&mut depths, metadata, pallet, entry, need)?,
            Need::Api(api, method) => {
                if let Some(m) = metadata
                    .runtime_api_trait_by_name(api)
                    .and_then(|t| t.method_by_name(method))
                {
                    for input in m.inputs() {
                        depths.check(input.id, need)?;
                    }
                    depths.check(m.output_ty(), need)?;
                }
            }
        }
    }
    Ok(())
}

/// The transaction extensions of a signed (V4) extrinsic, in order: each
/// one's identifier and the shapes of its two types (extra, additional;
/// see [`shape_id`]), as the known runtimes define them.
pub type ExtensionLayout = &'static [(&'static str, &'static str, &'static str)];

/// The extension layouts of the known runtimes. Signed bytes are the call,
/// then each extension's values in this order (whichever encode to
/// nothing are left out): a node that reorders them, or gives one another
/// type, could make the nonce of a key's first transaction be read as its
/// tip on the real chain.
pub const KNOWN_EXTENSION_LAYOUTS: &[ExtensionLayout] = &[FINNEY_393, LOCAL_293];

/// An empty struct (the extension writes nothing in the extrinsic).
const EMPTY: &str = "c77a82899c2718ab";
/// `()` (the extension adds nothing to what is signed).
const UNIT: &str = "a78e9c2f057b9c0d";
const VERSION: &str = "a5d0ea9f2b06b05d"; // u32
const HASH: &str = "6de23a91d15309f1"; // H256

/// Finney, spec 393.
const FINNEY_393: ExtensionLayout = &[
    ("CheckNonZeroSender", EMPTY, UNIT),
    ("CheckSpecVersion", EMPTY, VERSION),
    ("CheckTxVersion", EMPTY, VERSION),
    ("CheckGenesis", EMPTY, HASH),
    ("CheckMortality", "b4b36f9f33214463", HASH),
    ("CheckNonce", "5b9655f27c8cc31d", UNIT),
    ("CheckWeight", EMPTY, UNIT),
    ("ChargeTransactionPayment", "905ec2c9b3e7a046", UNIT),
    ("SudoTransactionExtension", EMPTY, UNIT),
    ("CheckShieldedTxValidity", EMPTY, UNIT),
    ("SubtensorTransactionExtension", EMPTY, UNIT),
    ("DrandPriority", EMPTY, UNIT),
    ("CheckMetadataHash", "1a5ff0d16bfd719c", "7b670aa766bf366d"),
];

/// The local test runtime, spec 293.
const LOCAL_293: ExtensionLayout = &[
    ("CheckNonZeroSender", EMPTY, UNIT),
    ("CheckSpecVersion", EMPTY, VERSION),
    ("CheckTxVersion", EMPTY, VERSION),
    ("CheckGenesis", EMPTY, HASH),
    ("CheckMortality", "b4b36f9f33214463", HASH),
    ("CheckNonce", "5b9655f27c8cc31d", UNIT),
    ("CheckWeight", EMPTY, UNIT),
    ("ChargeTransactionPayment", "905ec2c9b3e7a046", UNIT),
    ("SubtensorTransactionExtension", EMPTY, UNIT),
    ("CheckMetadataHash", "1a5ff0d16bfd719c", "7b670aa766bf366d"),
];

/// Checks that `metadata` offers signed (V4) extrinsics and that their
/// transaction extensions are laid out as in a known runtime
/// ([`KNOWN_EXTENSION_LAYOUTS`]).
pub fn check_extensions(metadata: &Metadata, sign_unpinned: bool) -> Result<(), ChainError> {
    let extrinsic = metadata.extrinsic();
    let layout: Vec<(String, String, String)> = extrinsic
        .transaction_extensions_by_version(0)
        .map(|exts| {
            exts.map(|e| {
                (
                    e.identifier().to_owned(),
                    shape_id(metadata.types(), e.extra_ty()),
                    shape_id(metadata.types(), e.additional_ty()),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    let known = KNOWN_EXTENSION_LAYOUTS.iter().any(|k| {
        k.len() == layout.len()
            && k.iter()
                .zip(&layout)
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1 && a.2 == b.2)
    });
    if extrinsic.supported_versions().contains(&4) && known {
        return Ok(());
    }
    let said = layout
        .iter()
        .map(|(name, _, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if sign_unpinned {
        tracing::warn!(
            extensions = %said,
            "signing with transaction extensions laid out unlike any runtime this release \
             knows, as sign_unpinned_calls allows"
        );
        return Ok(());
    }
    Err(ChainError::UntrustedMetadata(format!(
        "the node's metadata lays out signed transactions (versions {:?}; extensions {said}) \
         unlike every runtime this release knows: the bytes signed after the call would not \
         mean what this client sets (nonce, tip, era). Nothing was signed",
        extrinsic.supported_versions()
    )))
}

/// A short id of a type's shape: blake2b of its structure (field names,
/// variant names and indices, primitives, lengths), 8 bytes as hex. Only
/// for types already checked to be acyclic and shallow.
pub fn shape_id(types: &PortableRegistry, id: u32) -> String {
    use blake2::Digest as _;
    let mut text = String::new();
    describe(types, id, &mut text, 0);
    let digest = blake2::Blake2b512::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

fn describe(types: &PortableRegistry, id: u32, out: &mut String, depth: u32) {
    use std::fmt::Write as _;
    let Some(ty) = types.resolve(id) else {
        out.push('?');
        return;
    };
    if depth > MAX_TYPE_DEPTH {
        out.push('…');
        return;
    }
    let fields = |fs: &mut dyn Iterator<Item = (Option<&str>, u32)>, out: &mut String| {
        out.push('(');
        for (name, ty) in fs {
            let _ = write!(out, "{}:", name.unwrap_or(""));
            describe(types, ty, out, depth + 1);
            out.push(',');
        }
        out.push(')');
    };
    match &ty.type_def {
        TypeDef::Composite(c) => {
            out.push('S');
            fields(
                &mut c.fields.iter().map(|f| (f.name.as_deref(), f.ty.id)),
                out,
            );
        }
        TypeDef::Variant(v) => {
            out.push('E');
            for variant in &v.variants {
                let _ = write!(out, "{}={}", variant.index, variant.name);
                fields(
                    &mut variant.fields.iter().map(|f| (f.name.as_deref(), f.ty.id)),
                    out,
                );
            }
        }
        TypeDef::Sequence(s) => {
            out.push_str("Vec<");
            describe(types, s.type_param.id, out, depth + 1);
            out.push('>');
        }
        TypeDef::Array(a) => {
            let _ = write!(out, "[{};", a.len);
            describe(types, a.type_param.id, out, depth + 1);
            out.push(']');
        }
        TypeDef::Tuple(t) => {
            out.push('T');
            fields(&mut t.fields.iter().map(|f| (None, f.id)), out);
        }
        TypeDef::Primitive(p) => {
            let _ = write!(out, "{p:?}");
        }
        TypeDef::Compact(c) => {
            out.push_str("Compact<");
            describe(types, c.type_param.id, out, depth + 1);
            out.push('>');
        }
        TypeDef::BitSequence(b) => {
            out.push_str("Bits<");
            describe(types, b.bit_store_type.id, out, depth + 1);
            out.push(',');
            describe(types, b.bit_order_type.id, out, depth + 1);
            out.push('>');
        }
    }
}

/// Checks what waiting for an extrinsic decodes against `metadata` (the
/// client at the block that includes it): the registry's structure and
/// every pallet's events, as [`check`] does for a call.
pub fn check_events(metadata: &Metadata) -> Result<(), ChainError> {
    structure(metadata)?;
    events(
        &mut Depths::new(metadata.types()),
        metadata,
        &"the events of the block that includes the extrinsic",
    )
}

/// The transaction extensions a signature covers: their types are encoded
/// (and walked by subxt to see whether they encode to nothing).
fn signing(depths: &mut Depths<'_>, metadata: &Metadata, what: &Need) -> Result<(), ChainError> {
    let extrinsic = metadata.extrinsic();
    let mut any = false;
    for version in 0..=u8::MAX {
        let Some(extensions) = extrinsic.transaction_extensions_by_version(version) else {
            continue;
        };
        any = true;
        for e in extensions {
            depths.check(e.extra_ty(), what)?;
            depths.check(e.additional_ty(), what)?;
        }
    }
    if !any {
        // subxt would panic building the transaction.
        return Err(ChainError::UntrustedMetadata(format!(
            "{what}: the node's metadata lists no transaction extensions"
        )));
    }
    Ok(())
}

/// What waiting for an extrinsic decodes: every pallet's events (subxt
/// skips each event by its pallet's type), the outer event enum, the
/// `System.Events` records and the dispatch error.
fn events(
    depths: &mut Depths<'_>,
    metadata: &Metadata,
    what: &dyn std::fmt::Display,
) -> Result<(), ChainError> {
    for pallet in metadata.pallets() {
        if let Some(ty) = pallet.event_ty_id() {
            depths.check(ty, what)?;
        }
    }
    depths.check(metadata.outer_enums().event_enum_ty(), what)?;
    if let Some(ty) = metadata.dispatch_error_ty() {
        depths.check(ty, what)?;
    }
    if let Some(events) = metadata
        .pallet_by_name("System")
        .and_then(|p| p.storage())
        .and_then(|s| s.entry_by_name("Events"))
    {
        depths.check(events.value_ty(), what)?;
    }
    Ok(())
}

/// The whole registry, for what subxt encodes against types this client
/// cannot name (the extrinsic's address and signature types): following
/// only structs, tuples, arrays and compacts (which encode no bytes of
/// their own), no type may reach itself or nest deeper than
/// [`MAX_TYPE_DEPTH`]. The encoder's recursion follows exactly these.
fn structure(metadata: &Metadata) -> Result<(), ChainError> {
    let mut walk = Depths::structural(metadata.types());
    for t in &metadata.types().types {
        walk.check(t.id, &"the type registry")?;
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

/// `fut`, with a panic inside it turned into
/// [`ChainError::UntrustedMetadata`]. subxt panics on some inconsistent
/// metadata where it builds a client at a block (a `System::Hashing` type
/// the registry lacks, in V16 metadata); from a node's answer, that is an
/// error of the node, not a crash of this process.
pub(crate) async fn unpanicked<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, ChainError>>,
) -> Result<T, ChainError> {
    use subxt::ext::futures::FutureExt as _;
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ChainError::UntrustedMetadata(format!(
                "{what}: the chain library failed on the node's metadata ({why})"
            )))
        }
    }
}

/// Checks one type the client is about to decode (see [`check`]).
pub fn check_type(metadata: &Metadata, ty: u32, what: &str) -> Result<(), ChainError> {
    Depths::new(metadata.types()).check(ty, &what).map(drop)
}

/// The call data `call` encodes to against `metadata`, which must be
/// exactly its pin's pallet and call index followed by `args`: the
/// arguments as this release encodes them (SCALE, their Rust types). The
/// shape hash ([`PINNED_CALLS`]) ignores the order of nested fields and
/// variants' indices; these bytes do not. Run before signing.
pub fn check_call_bytes<P: subxt::transactions::Payload>(
    metadata: &Metadata,
    call: &P,
    args: &[u8],
    sign_unpinned: bool,
) -> Result<(), ChainError> {
    let (pallet, name) = (call.pallet_name(), call.call_name());
    let pin = pin_of(pallet, name)?;
    let encoded = subxt::ext::frame_decode::extrinsics::encode_call_data(
        pallet,
        name,
        call.call_data(),
        metadata,
        metadata.types(),
    )
    .map_err(|e| ChainError::Unsupported(format!("call {pallet}.{name}: cannot encode it: {e}")))?;
    let mut expected = vec![pin.pallet_index, pin.call_index];
    expected.extend_from_slice(args);
    if encoded == expected {
        return Ok(());
    }
    if sign_unpinned {
        tracing::warn!(
            call = %format!("{pallet}.{name}"),
            "signing call bytes that differ from what this release computes, as \
             sign_unpinned_calls allows"
        );
        return Ok(());
    }
    Err(ChainError::UntrustedMetadata(format!(
        "call {pallet}.{name} encodes to 0x{} against the node's metadata; this release \
         computes 0x{}. Nothing was signed",
        short_hex(&encoded),
        short_hex(&expected)
    )))
}

/// At most the first 64 bytes, as hex.
fn short_hex(bytes: &[u8]) -> String {
    let cut = bytes.len().min(64);
    let more = if cut < bytes.len() { "…" } else { "" };
    format!("{}{more}", hex::encode(&bytes[..cut]))
}

/// The pin of `pallet.call`; every call the client signs has one.
fn pin_of(pallet: &str, call: &str) -> Result<&'static PinnedCall, ChainError> {
    PINNED_CALLS
        .iter()
        .find(|p| p.pallet == pallet && p.call == call)
        .ok_or_else(|| {
            ChainError::UntrustedMetadata(format!(
                "call {pallet}.{call} has no pin in this release"
            ))
        })
}

fn check_pin(
    metadata: &Metadata,
    pallet: &str,
    call: &str,
    sign_unpinned: bool,
) -> Result<(), ChainError> {
    let pin = pin_of(pallet, call)?;
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

/// What the walk knows of a finished type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    /// 1 + the deepest child.
    depth: u32,
    /// The fewest bytes a value of it encodes to (saturating).
    min_size: u64,
    /// Decoding a value of `b` bytes visits at most `per_byte * b + fixed`
    /// types (saturating).
    per_byte: u64,
    fixed: u64,
}

const LEAF: Shape = Shape {
    depth: 0,
    min_size: 0,
    per_byte: 0,
    fixed: 0,
};

/// The shapes of types, memoized across roots.
struct Depths<'a> {
    types: &'a PortableRegistry,
    done: HashMap<u32, Shape>,
    /// Only the edges the encoder follows without consuming bytes (see
    /// [`structure`]); no size rules.
    structural: bool,
}

impl<'a> Depths<'a> {
    fn new(types: &'a PortableRegistry) -> Depths<'a> {
        Depths {
            types,
            done: HashMap::new(),
            structural: false,
        }
    }

    fn structural(types: &'a PortableRegistry) -> Depths<'a> {
        Depths {
            structural: true,
            ..Depths::new(types)
        }
    }

    /// An error unless `root` is acyclic, at most [`MAX_TYPE_DEPTH`] deep,
    /// decodes in at most [`MAX_VISITS`] visits, and has no list whose
    /// elements take no bytes or cost more than [`MAX_VISITS_PER_BYTE`].
    /// Iterative: the check itself cannot overflow the stack.
    fn check(&mut self, root: u32, what: &dyn std::fmt::Display) -> Result<u32, ChainError> {
        if let Some(d) = self.done.get(&root) {
            return Ok(d.depth);
        }
        let untrusted = |why: String| {
            ChainError::UntrustedMetadata(format!("{what}: the node's metadata {why}"))
        };
        let types = self.types;
        let structural = self.structural;
        let frame = |id: u32| -> Result<Frame, ChainError> {
            let ty = types
                .resolve(id)
                .ok_or_else(|| untrusted(format!("names type {id}, which it does not define")))?;
            let children = if structural {
                structural_children(ty)
            } else {
                children(ty)
            };
            Ok(Frame {
                id,
                children,
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
                let shape = if structural {
                    Shape { depth, ..LEAF }
                } else {
                    self.shape(id, depth, &untrusted)?
                };
                self.done.insert(id, shape);
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
            if let Some(d) = self.done.get(&child) {
                if above + d.depth > MAX_TYPE_DEPTH {
                    return Err(too_deep(&untrusted));
                }
                if let Some(top) = stack.last_mut() {
                    top.depth = top.depth.max(d.depth + 1);
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

    /// The shape of `id`, whose children are all done, and the size rules.
    fn shape(
        &self,
        id: u32,
        depth: u32,
        untrusted: &dyn Fn(String) -> ChainError,
    ) -> Result<Shape, ChainError> {
        let get = |c: u32| self.done.get(&c).copied().unwrap_or(LEAF);
        // A struct: its fields one after another, one visit for itself.
        let all = |ids: &mut dyn Iterator<Item = u32>| {
            ids.map(get).fold(
                Shape {
                    depth,
                    min_size: 0,
                    per_byte: 0,
                    fixed: 1,
                },
                |acc, s| Shape {
                    depth,
                    min_size: acc.min_size.saturating_add(s.min_size),
                    per_byte: acc.per_byte.max(s.per_byte),
                    fixed: acc.fixed.saturating_add(s.fixed),
                },
            )
        };
        let Some(ty) = self.types.resolve(id) else {
            return Err(untrusted(format!(
                "names type {id}, which it does not define"
            )));
        };
        let shape = match &ty.type_def {
            TypeDef::Composite(c) => all(&mut c.fields.iter().map(|f| f.ty.id)),
            TypeDef::Tuple(t) => all(&mut t.fields.iter().map(|f| f.id)),
            TypeDef::Variant(v) => {
                // A decoder finds a variant by scanning for its index: an
                // enum with millions of variants would cost that much per
                // index byte. SCALE's index is one byte, each used once.
                let mut seen = [false; 256];
                for variant in &v.variants {
                    let slot = &mut seen[usize::from(variant.index)];
                    if *slot {
                        return Err(untrusted(format!(
                            "describes an enum (type {id}) with index {} twice",
                            variant.index
                        )));
                    }
                    *slot = true;
                }
                // One index byte, then one variant's fields.
                let each: Vec<Shape> = v
                    .variants
                    .iter()
                    .map(|v| all(&mut v.fields.iter().map(|f| f.ty.id)))
                    .collect();
                Shape {
                    depth,
                    min_size: each
                        .iter()
                        .map(|s| s.min_size)
                        .min()
                        .unwrap_or(0)
                        .saturating_add(1),
                    per_byte: each.iter().map(|s| s.per_byte).max().unwrap_or(0).max(1),
                    fixed: each.iter().map(|s| s.fixed).max().unwrap_or(1),
                }
            }
            TypeDef::Sequence(q) => {
                let e = get(q.type_param.id);
                if e.min_size == 0 {
                    return Err(untrusted(format!(
                        "describes a list (type {id}) of elements that take no bytes: its \
                         length alone could keep a decoder busy without end"
                    )));
                }
                // Each element takes at least a byte: its fixed visits
                // are paid for by its bytes.
                Shape {
                    depth,
                    min_size: 1,
                    per_byte: e.per_byte.saturating_add(e.fixed).max(2),
                    fixed: 1,
                }
            }
            TypeDef::Array(a) => {
                let e = get(a.type_param.id);
                let len = u64::from(a.len);
                Shape {
                    depth,
                    min_size: e.min_size.saturating_mul(len),
                    per_byte: e.per_byte,
                    fixed: e.fixed.saturating_mul(len).saturating_add(1),
                }
            }
            TypeDef::Primitive(p) => Shape {
                depth,
                min_size: primitive_size(p),
                per_byte: 1,
                fixed: 0,
            },
            TypeDef::Compact(_) | TypeDef::BitSequence(_) => Shape {
                depth,
                min_size: 1,
                per_byte: 2,
                fixed: 0,
            },
        };
        if shape.fixed > MAX_VISITS {
            return Err(untrusted(format!(
                "describes a type (id {id}) that takes more than {MAX_VISITS} steps to decode \
                 without reading a byte"
            )));
        }
        if shape.per_byte > MAX_VISITS_PER_BYTE {
            return Err(untrusted(format!(
                "describes a type (id {id}) that may take {} steps to decode per byte read (at \
                 most {MAX_VISITS_PER_BYTE})",
                shape.per_byte
            )));
        }
        Ok(shape)
    }
}

/// The most types a value may take to decode beyond what its bytes pay
/// for (structs of structs of empty structs). A tuple of tuples of empty
/// tuples 32 deep would otherwise take 2^32 steps for no byte at all. The
/// known runtimes' most is 39.
pub const MAX_VISITS: u64 = 4096;

/// The most types a value may take to decode per byte it is read from
/// (a list of elements of many small structs): an answer of N bytes takes
/// at most about this many times N steps. The known runtimes' most is 11.
pub const MAX_VISITS_PER_BYTE: u64 = 64;

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

fn primitive_size(p: &scale_info::TypeDefPrimitive) -> u64 {
    use scale_info::TypeDefPrimitive as P;
    match p {
        P::Bool | P::U8 | P::I8 | P::Str => 1,
        P::U16 | P::I16 => 2,
        P::Char | P::U32 | P::I32 => 4,
        P::U64 | P::I64 => 8,
        P::U128 | P::I128 => 16,
        P::U256 | P::I256 => 32,
    }
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

/// The children the encoder reaches without consuming bytes: those of
/// structs, tuples, arrays and compacts.
fn structural_children(ty: &Type<PortableForm>) -> Vec<u32> {
    match &ty.type_def {
        TypeDef::Composite(_) | TypeDef::Tuple(_) | TypeDef::Array(_) | TypeDef::Compact(_) => {
            children(ty)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
