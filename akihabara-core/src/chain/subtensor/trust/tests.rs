use scale_info::{Field, PortableRegistry, TypeDef, TypeDefComposite};
use subxt::ext::codec::Decode as _;
use subxt::ext::frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};

use super::*;
use crate::chain::subtensor::requirements::{self as req, ALL};

const KNOWN: [&str; 2] = ["finney.scale", "subtensor-local-spec293.scale"];

/// Every entry the client checks, in the runtimes that have it.
fn everything(md: &Metadata) -> Vec<Need> {
    let extra = [
        req::COMMIT_CRV3,
        req::COMMIT_TIMELOCKED,
        req::COMMIT_TIMELOCKED_MECH,
        req::REVEAL_PERIOD,
        req::CR_VERSION,
        req::TIMELOCKED_COMMITS,
        req::CRV3_COMMITS,
        req::WEIGHT_COMMITS,
        req::WEIGHTS,
        req::PULSES,
        req::LAST_STORED_ROUND,
    ];
    ALL.iter()
        .chain(extra.iter())
        .copied()
        .filter(|n| req::provides(md, *n))
        .collect()
}

/// The deepest type any of `needs` decodes.
fn deepest(md: &Metadata, needs: &[Need]) -> u32 {
    let mut d = Depths::new(md.types());
    let mut roots = vec![md.outer_enums().event_enum_ty()];
    for n in needs {
        match *n {
            Need::Storage(p, e) => {
                let e = md
                    .pallet_by_name(p)
                    .and_then(|p| p.storage())
                    .and_then(|s| s.entry_by_name(e))
                    .expect("entry");
                roots.push(e.value_ty());
            }
            Need::Api(t, m) => roots.push(
                md.runtime_api_trait_by_name(t)
                    .and_then(|t| t.method_by_name(m))
                    .expect("method")
                    .output_ty(),
            ),
            Need::Call(..) => {}
        }
    }
    let deepest = roots
        .into_iter()
        .map(|r| d.check(r, &"root").expect("bounded"))
        .max()
        .unwrap_or(0);
    let per_byte = d.done.values().map(|s| s.per_byte).max().unwrap_or(0);
    let fixed = d.done.values().map(|s| s.fixed).max().unwrap_or(0);
    // The module docs and the limits' docs quote these.
    assert_eq!((per_byte, fixed), (11, 39));
    deepest
}

#[test]
fn the_known_runtimes_pass_and_every_signed_call_is_pinned() {
    for name in KNOWN {
        let Some(md) = crate::chain::subtensor::shared_metadata(name) else {
            continue;
        };
        let needs = everything(&md);
        check(&md, &needs, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The module docs quote this.
        assert_eq!(deepest(&md, &needs), 7, "{name}");
        for n in &needs {
            if let Need::Call(p, c, _) = *n {
                assert!(
                    PINNED_CALLS.iter().any(|x| x.pallet == p && x.call == c),
                    "{name}: {p}.{c} is signed but not pinned"
                );
            }
        }
    }
    // Each pin is used by a call the client names.
    let calls: Vec<&str> = [
        req::SET_WEIGHTS,
        req::COMMIT_WEIGHTS,
        req::REVEAL_WEIGHTS,
        req::SERVE_AXON,
        req::BURNED_REGISTER,
        req::COMMIT_CRV3,
        req::COMMIT_TIMELOCKED,
        req::COMMIT_TIMELOCKED_MECH,
    ]
    .iter()
    .filter_map(|n| match n {
        Need::Call(_, c, _) => Some(*c),
        _ => None,
    })
    .collect();
    for p in PINNED_CALLS {
        assert!(calls.contains(&p.call), "{} is pinned but unused", p.call);
    }
}

/// The local runtime's metadata (V15), its types changed by `edit` as a
/// lying node would serve it.
fn hostile(edit: impl FnOnce(&mut PortableRegistry, &Metadata)) -> Option<Metadata> {
    hostile_metadata(|m, honest| edit(&mut m.types, honest))
}

/// [`hostile`], with the whole metadata to edit.
fn hostile_metadata(
    edit: impl FnOnce(&mut subxt::ext::frame_metadata::v15::RuntimeMetadataV15, &Metadata),
) -> Option<Metadata> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/chain/subtensor-local-spec293.scale");
    let honest = crate::chain::subtensor::shared_metadata("subtensor-local-spec293.scale")?;
    let bytes = std::fs::read(path).expect("read");
    let mut prefixed = RuntimeMetadataPrefixed::decode(&mut &bytes[..]).expect("decodes");
    let RuntimeMetadata::V15(ref mut m) = prefixed.1 else {
        panic!("the local runtime's metadata is V15");
    };
    edit(m, &honest);
    Some(Metadata::try_from(prefixed).expect("still metadata"))
}

fn ty_mut(types: &mut PortableRegistry, id: u32) -> &mut TypeDef<PortableForm> {
    &mut types
        .types
        .iter_mut()
        .find(|t| t.id == id)
        .expect("type")
        .ty
        .type_def
}

fn storage_value(md: &Metadata, entry: &str) -> u32 {
    md.pallet_by_name("SubtensorModule")
        .and_then(|p| p.storage())
        .and_then(|s| s.entry_by_name(entry))
        .expect("entry")
        .value_ty()
}

/// Points the value of the `SubtensorModule.SubnetworkN` map at type `ty`.
fn set_subnetwork_n_value(m: &mut subxt::ext::frame_metadata::v15::RuntimeMetadataV15, ty: u32) {
    use subxt::ext::frame_metadata::v14::StorageEntryType;
    let entry = m
        .pallets
        .iter_mut()
        .find(|p| p.name == "SubtensorModule")
        .and_then(|p| p.storage.as_mut())
        .and_then(|s| s.entries.iter_mut().find(|e| e.name == "SubnetworkN"))
        .expect("SubnetworkN");
    let StorageEntryType::Map { value, .. } = &mut entry.ty else {
        panic!("SubnetworkN is a map");
    };
    *value = ty.into();
}

fn one_field(ty: u32) -> TypeDef<PortableForm> {
    TypeDef::Composite(TypeDefComposite {
        fields: vec![Field {
            name: None,
            ty: ty.into(),
            type_name: None,
            docs: Vec::new(),
        }],
    })
}

#[test]
fn a_type_that_contains_itself_is_refused_before_decoding() {
    let Some(md) = hostile(|types, honest| {
        // `SubnetworkN`'s value (a u16): now a struct whose one field is itself.
        let id = storage_value(honest, "SubnetworkN");
        *ty_mut(types, id) = one_field(id);
    }) else {
        return;
    };
    // The whole registry is refused (a struct chain that never ends) ...
    let err = check(&md, &[req::SUBNETWORK_N], false).expect_err("recursive");
    assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
    assert!(err.to_string().contains("as containing itself"), "{err}");
    // ... and so is each read of a value of it.
    let err = check_storage(&md, "SubtensorModule", "SubnetworkN").expect_err("recursive");
    assert!(
        err.to_string()
            .contains("storage SubtensorModule.SubnetworkN: the node's metadata describes type"),
        "{err}"
    );
    assert!(check_storage(&md, "SubtensorModule", "Uids").is_err());
}

/// A new type at the end of the registry; its id.
fn add(types: &mut PortableRegistry, def: TypeDef<PortableForm>) -> u32 {
    let id = types.types.iter().map(|t| t.id).max().expect("types") + 1;
    let mut ty = types.types[0].ty.clone();
    ty.type_def = def;
    ty.path = scale_info::Path::default();
    types.types.push(scale_info::PortableType { id, ty });
    id
}

#[test]
fn an_event_that_contains_itself_is_refused_before_signing() {
    // A pallet's event type given a variant whose field is an enum that
    // contains itself: no struct cycle, so only the events' walk sees it.
    // subxt skips every event of a block by its pallet's type.
    let Some(md) = hostile(|types, honest| {
        let looped = add(
            types,
            TypeDef::Variant(scale_info::TypeDefVariant {
                variants: Vec::new(),
            }),
        );
        *ty_mut(types, looped) = TypeDef::Variant(scale_info::TypeDefVariant {
            variants: vec![scale_info::Variant {
                name: "Again".into(),
                fields: vec![Field {
                    name: None,
                    ty: looped.into(),
                    type_name: None,
                    docs: Vec::new(),
                }],
                index: 0,
                docs: Vec::new(),
            }],
        });
        let balances = honest
            .pallet_by_name("Balances")
            .and_then(|p| p.event_ty_id())
            .expect("Balances events");
        let TypeDef::Variant(v) = ty_mut(types, balances) else {
            panic!("events are an enum");
        };
        v.variants[0].fields[0].ty = looped.into();
    }) else {
        return;
    };
    let err = check(&md, &[req::SET_WEIGHTS], false).expect_err("refused");
    assert!(
        err.to_string().contains("call SubtensorModule.set_weights")
            && err.to_string().contains("as containing itself"),
        "{err}"
    );
    // Reads that decode no events are not affected.
    check(&md, &[req::SUBNETWORK_N], false).expect("storage reads");
}

#[test]
fn types_that_take_endless_steps_without_bytes_are_refused() {
    // `SubnetworkN`'s value: a list of empty structs. Its length (up to
    // 2^62 from a few bytes) alone would keep a decoder spinning.
    let Some(md) = hostile(|types, honest| {
        let empty = add(
            types,
            TypeDef::Composite(TypeDefComposite { fields: Vec::new() }),
        );
        let id = storage_value(honest, "SubnetworkN");
        *ty_mut(types, id) = TypeDef::Sequence(scale_info::TypeDefSequence {
            type_param: empty.into(),
        });
    }) else {
        return;
    };
    let err = check_storage(&md, "SubtensorModule", "SubnetworkN").expect_err("spins");
    assert!(
        err.to_string().contains("elements that take no bytes"),
        "{err}"
    );

    // Tuples of tuples of the empty tuple, 30 deep: 2^30 steps, no byte.
    let Some(md) = hostile(|types, honest| {
        let mut t = add(
            types,
            TypeDef::Tuple(scale_info::TypeDefTuple { fields: Vec::new() }),
        );
        for _ in 0..30 {
            t = add(
                types,
                TypeDef::Tuple(scale_info::TypeDefTuple {
                    fields: vec![t.into(), t.into()],
                }),
            );
        }
        let id = storage_value(honest, "SubnetworkN");
        *ty_mut(types, id) = one_field(t);
    }) else {
        return;
    };
    let err = check_storage(&md, "SubtensorModule", "SubnetworkN").expect_err("2^30 steps");
    assert!(
        err.to_string()
            .contains(&format!("more than {MAX_VISITS} steps to decode")),
        "{err}"
    );
}

#[test]
fn a_recursive_runtime_api_answer_type_is_refused_not_decoded() {
    // `get_metagraph`'s answer made a struct whose one field is itself.
    // Before the check, decoding any answer recursed until the stack
    // overflowed and the process aborted.
    let Some(md) = hostile(|types, honest| {
        let id = honest
            .runtime_api_trait_by_name("SubnetInfoRuntimeApi")
            .and_then(|t| t.method_by_name("get_metagraph"))
            .expect("get_metagraph")
            .output_ty();
        *ty_mut(types, id) = one_field(id);
    }) else {
        return;
    };
    let err = crate::chain::decode_metagraph_answer(&md, &[1, 0, 0, 0]).expect_err("refused");
    assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("the answer of SubnetInfoRuntimeApi::get_metagraph"),
        "{err}"
    );
}

/// The local runtime with `SubnetworkN`'s value (its own type now, the
/// shared u16 left alone) nested `depth` deep: one new struct per level, a
/// u16 at the bottom.
fn nested(depth: u32) -> Option<Metadata> {
    hostile_metadata(|m, honest| {
        let types = &mut m.types;
        let u16_id = storage_value(honest, "SubnetworkN");
        let u16_def = ty_mut(types, u16_id).clone();
        let mut last = add(types, u16_def);
        for _ in 1..depth {
            last = add(types, one_field(last));
        }
        set_subnetwork_n_value(m, last);
    })
}

#[test]
fn types_nested_too_deep_are_refused() {
    let Some(md) = nested(MAX_TYPE_DEPTH + 1) else {
        return;
    };
    let err = check(&md, &[req::SUBNETWORK_N], false).expect_err("too deep");
    assert!(
        err.to_string()
            .contains(&format!("more than {MAX_TYPE_DEPTH} deep")),
        "{err}"
    );
    assert!(check_storage(&md, "SubtensorModule", "SubnetworkN").is_err());
}

#[test]
fn the_deepest_type_allowed_decodes_on_half_a_thread_stack() {
    let Some(md) = nested(MAX_TYPE_DEPTH) else {
        return;
    };
    check(&md, &[req::SUBNETWORK_N], false).expect("64 deep is allowed");
    let ty = storage_value(&md, "SubnetworkN");
    // Decoded as a dynamic value (the deepest recursion of the decoders),
    // in a debug build, on a thread with half the stack tokio's and Rust's
    // threads get (2 MiB).
    let decoded = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            subxt::ext::scale_value::scale::decode_as_type(&mut &[7u8, 0][..], ty, md.types())
                .map(|v| v.to_string())
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(decoded.expect("decodes").contains('7'));
}

#[test]
fn a_call_moved_or_reshaped_by_the_node_is_not_signed() {
    let call_enum = |types: &mut PortableRegistry| -> u32 {
        types
            .types
            .iter()
            .find(|t| t.ty.path.segments == ["pallet_subtensor", "pallet", "Call"])
            .expect("the subtensor Call enum")
            .id
    };
    // The index of `set_weights` swapped with another call's.
    let Some(moved) = hostile(|types, _| {
        let id = call_enum(types);
        let TypeDef::Variant(v) = ty_mut(types, id) else {
            panic!("Call is an enum");
        };
        let w = v
            .variants
            .iter_mut()
            .find(|v| v.name == "set_weights")
            .expect("set_weights");
        w.index = 42;
    }) else {
        return;
    };
    let err = check(&moved, &[req::SET_WEIGHTS], false).expect_err("moved");
    assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("SubtensorModule.set_weights at pallet 7, call 42")
            && text.contains("has pallet 7, call 0"),
        "{text}"
    );
    // Opting in signs it (with a warning).
    check(&moved, &[req::SET_WEIGHTS], true).expect("opted in");
    // Other calls are unaffected.
    check(&moved, &[req::SERVE_AXON], false).expect("serve_axon as known");

    // `burned_register`'s hotkey argument given another type: same index,
    // other bytes. The shape hash catches it.
    let Some(reshaped) = hostile(|types, _| {
        let id = call_enum(types);
        let TypeDef::Variant(v) = ty_mut(types, id) else {
            panic!("Call is an enum");
        };
        let call = v
            .variants
            .iter_mut()
            .find(|v| v.name == "burned_register")
            .expect("burned_register");
        let netuid = call.fields[0].ty;
        call.fields[1].ty = netuid;
    }) else {
        return;
    };
    let err = check(&reshaped, &[req::BURNED_REGISTER], false).expect_err("reshaped");
    assert!(
        err.to_string()
            .contains("SubtensorModule.burned_register at pallet 7, call 7, shape"),
        "{err}"
    );
}

#[test]
fn a_type_the_registry_lacks_is_refused() {
    let Some(md) = hostile(|types, honest| {
        let id = storage_value(honest, "SubnetworkN");
        *ty_mut(types, id) = one_field(u32::MAX);
    }) else {
        return;
    };
    let err = check(&md, &[req::SUBNETWORK_N], false).expect_err("dangling");
    assert!(err.to_string().contains("names type 4294967295"), "{err}");
}

/// `call` with `args` as the client builds it passes [`check_call_bytes`]
/// against `md`, with the arguments' own bytes.
fn accepts<A>(md: &Metadata, call: &str, args: A)
where
    A: subxt::ext::codec::Encode,
    subxt::transactions::DynamicPayload<A>: subxt::transactions::Payload,
{
    let encoded = args.encode();
    let payload = subxt::dynamic::transaction("SubtensorModule", call, args);
    check_call_bytes(md, &payload, &encoded, false).unwrap_or_else(|e| panic!("{call}: {e}"));
}

#[test]
fn call_bytes_are_the_ones_this_release_computes() {
    use subxt::dynamic;
    use subxt::ext::codec::Encode as _;
    use subxt::utils::{AccountId32, H256};
    for name in KNOWN {
        let Some(md) = crate::chain::subtensor::shared_metadata(name) else {
            continue;
        };
        // Each call as the client builds it, with its arguments' own bytes.
        let serve = (2u16, 1u32, 0x7f00_0001u128, 8091u16, 4u8, 4u8, 0u8, 0u8);
        let weights = (2u16, vec![0u16, 1, 2], vec![65535u16, 0, 7], 7u64);
        let commit = (2u16, H256([9; 32]));
        let reveal = (2u16, vec![0u16, 1], vec![1u16, 2], vec![3u16; 8], 7u64);
        let register = (2u16, AccountId32([5; 32]));
        accepts(&md, "serve_axon", serve);
        accepts(&md, "set_weights", weights);
        accepts(&md, "commit_weights", commit);
        accepts(&md, "reveal_weights", reveal);
        accepts(&md, "burned_register", register);

        // Bytes that differ from what the metadata encodes (here: another
        // hotkey than the one in the call) are refused, naming both.
        let other = (2u16, AccountId32([6; 32]));
        let err = check_call_bytes(
            &md,
            &dynamic::transaction("SubtensorModule", "burned_register", register),
            &other.encode(),
            false,
        )
        .expect_err("other bytes");
        assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("encodes to 0x0707{}", "0200"))
                && text.contains(&"05".repeat(32))
                && text.contains(&"06".repeat(32))
                && text.contains("Nothing was signed"),
            "{text}"
        );
        check_call_bytes(
            &md,
            &dynamic::transaction("SubtensorModule", "burned_register", register),
            &other.encode(),
            true,
        )
        .expect("opted in");
    }
}

/// V16 metadata (Finney's) whose `System::Hashing` names a type the
/// registry lacks: subxt's hasher panics when it builds a client at a
/// block. Through `unpanicked`, that is an error naming the metadata.
#[test]
fn a_panic_of_the_chain_library_on_bad_metadata_is_an_error() {
    use subxt::config::Hasher as _;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/chain/finney.scale");
    if crate::chain::subtensor::shared_metadata("finney.scale").is_none() {
        return;
    }
    let bytes = std::fs::read(path).expect("read");
    let mut prefixed = RuntimeMetadataPrefixed::decode(&mut &bytes[..]).expect("decodes");
    let RuntimeMetadata::V16(ref mut m) = prefixed.1 else {
        panic!("Finney's metadata is V16");
    };
    let system = m
        .pallets
        .iter_mut()
        .find(|p| p.name == "System")
        .expect("System");
    let hashing = system
        .associated_types
        .iter_mut()
        .find(|t| t.name == "Hashing")
        .expect("Hashing");
    hashing.ty = u32::MAX.into();
    let md = Metadata::try_from(prefixed).expect("still metadata");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(unpanicked("building a client", async {
            let _ = subxt::config::substrate::DynamicHasher256::new(&md);
            Ok(())
        }))
        .expect_err("the hasher panics");
    assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("building a client: the chain library failed on the node's metadata (Type information for 'Hashing'"),
        "{err}"
    );
}

#[test]
fn an_enum_with_an_index_twice_is_refused() {
    // `SubnetworkN`'s value: an enum of 300 variants, indices wrapping, so
    // a decoder scans them all for each index byte (millions fit in 24 MiB).
    let Some(md) = hostile(|types, honest| {
        let id = storage_value(honest, "SubnetworkN");
        *ty_mut(types, id) = TypeDef::Variant(scale_info::TypeDefVariant {
            variants: (0..300u32)
                .map(|i| scale_info::Variant {
                    name: format!("V{i}"),
                    fields: Vec::new(),
                    index: (i % 256) as u8,
                    docs: Vec::new(),
                })
                .collect(),
        });
    }) else {
        return;
    };
    let err = check_storage(&md, "SubtensorModule", "SubnetworkN").expect_err("duplicates");
    assert!(err.to_string().contains("with index 0 twice"), "{err}");
}

#[test]
fn transaction_extensions_laid_out_otherwise_are_not_signed() {
    for name in KNOWN {
        let Some(md) = crate::chain::subtensor::shared_metadata(name) else {
            continue;
        };
        check_extensions(&md, false).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The nonce and the tip swapped: a key's first transaction (nonce 0)
    // would have its tip read as the nonce the node reported, and the
    // nonce as a tip of 0... or the other way round, at the node's choice.
    let Some(md) = hostile_metadata(|m, _| {
        let exts = &mut m.extrinsic.signed_extensions;
        let nonce = exts
            .iter()
            .position(|e| e.identifier == "CheckNonce")
            .expect("CheckNonce");
        let tip = exts
            .iter()
            .position(|e| e.identifier == "ChargeTransactionPayment")
            .expect("ChargeTransactionPayment");
        exts.swap(nonce, tip);
    }) else {
        return;
    };
    let err = check_extensions(&md, false).expect_err("reordered");
    assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
    assert!(
        err.to_string().contains(
            "CheckMortality, ChargeTransactionPayment, CheckWeight, CheckNonce, SubtensorTransactionExtension"
        ) && err.to_string().contains("Nothing was signed"),
        "{err}"
    );
    // A call is refused before signing; a read is not affected.
    assert!(check(&md, &[req::SET_WEIGHTS], false).is_err());
    check(&md, &[req::SUBNETWORK_N], false).expect("reads");
    check_extensions(&md, true).expect("opted in");
}

/// Whether `root` reaches a cycle, by plain recursion (small test graphs).
fn reaches_cycle(types: &PortableRegistry, root: u32) -> bool {
    fn walk(types: &PortableRegistry, id: u32, path: &mut Vec<u32>) -> bool {
        if path.contains(&id) {
            return true;
        }
        let Some(ty) = types.resolve(id) else {
            return false;
        };
        path.push(id);
        let found = super::children(ty)
            .into_iter()
            .any(|c| walk(types, c, path));
        path.pop();
        found
    }
    walk(types, root, &mut Vec::new())
}

mod hostile_registries {
    use proptest::prelude::*;

    use super::*;

    fn field(ty: u32, name: Option<&str>) -> Field<PortableForm> {
        Field {
            name: name.map(Into::into),
            ty: ty.into(),
            type_name: None,
            docs: Vec::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random graphs of structs, lists, arrays, tuples and enums behind
        /// `SubnetworkN` (each edit: type `pool[at]` becomes shape `kind`
        /// over `pool[a]` and `pool[b]`, an array of `len`): the check
        /// refuses every one that reaches a cycle,
        /// and whatever it accepts is skipped over random bytes, as subxt
        /// skips events, on a 1 MiB stack without crashing.
        #[test]
        fn are_refused_or_decode_in_bounds(
            edits in proptest::collection::vec((0usize..6, 0u8..7, 0usize..6, 0usize..6, 0u32..40), 1..8),
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut pool = Vec::new();
            let Some(md) = hostile_metadata(|m, _| {
                let types = &mut m.types;
                for _ in 0..6 {
                    pool.push(add(types, TypeDef::Primitive(scale_info::TypeDefPrimitive::U8)));
                }
                for (at, kind, a, b, len) in edits.iter().copied() {
                    let (a, b) = (pool[a], pool[b]);
                    let def = match kind {
                        0 => TypeDef::Composite(TypeDefComposite { fields: vec![field(a, Some("x"))] }),
                        1 => TypeDef::Composite(TypeDefComposite {
                            fields: vec![field(a, Some("x")), field(b, Some("y"))],
                        }),
                        2 => TypeDef::Sequence(scale_info::TypeDefSequence { type_param: a.into() }),
                        3 => TypeDef::Array(scale_info::TypeDefArray { len, type_param: a.into() }),
                        4 => TypeDef::Tuple(scale_info::TypeDefTuple { fields: vec![a.into(), b.into()] }),
                        5 => TypeDef::Variant(scale_info::TypeDefVariant {
                            variants: vec![
                                scale_info::Variant { name: "A".into(), fields: vec![field(a, None)], index: 0, docs: Vec::new() },
                                scale_info::Variant { name: "B".into(), fields: vec![field(b, None)], index: 1, docs: Vec::new() },
                            ],
                        }),
                        _ => TypeDef::Compact(scale_info::TypeDefCompact { type_param: a.into() }),
                    };
                    *ty_mut(types, pool[at]) = def;
                }
                set_subnetwork_n_value(m, pool[0]);
            }) else {
                return Ok(());
            };
            let root = pool[0];
            let verdict = check_storage(&md, "SubtensorModule", "SubnetworkN");
            if reaches_cycle(md.types(), root) {
                prop_assert!(verdict.is_err(), "a cycle passed: {edits:?}");
            }
            if verdict.is_ok() {
                let skipped = std::thread::Builder::new()
                    .stack_size(1 << 20)
                    .spawn(move || {
                        use subxt::ext::scale_decode::visitor::{decode_with_visitor, IgnoreVisitor};
                        let mut input = &bytes[..];
                        decode_with_visitor(&mut input, root, md.types(), IgnoreVisitor::new()).is_ok()
                    })
                    .expect("thread")
                    .join();
                prop_assert!(skipped.is_ok(), "the decoder panicked: {edits:?}");
            }
        }
    }
}
