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
    roots
        .into_iter()
        .map(|r| d.check(r, &"root").expect("bounded"))
        .max()
        .unwrap_or(0)
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

/// The local runtime's metadata (V15), changed by `edit` as a lying node
/// would serve it.
fn hostile(edit: impl FnOnce(&mut PortableRegistry, &Metadata)) -> Option<Metadata> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/chain/subtensor-local-spec293.scale");
    let honest = crate::chain::subtensor::shared_metadata("subtensor-local-spec293.scale")?;
    let bytes = std::fs::read(path).expect("read");
    let mut prefixed = RuntimeMetadataPrefixed::decode(&mut &bytes[..]).expect("decodes");
    let RuntimeMetadata::V15(ref mut m) = prefixed.1 else {
        panic!("the local runtime's metadata is V15");
    };
    edit(&mut m.types, &honest);
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
    let err = check(&md, &[req::SUBNETWORK_N], false).expect_err("recursive");
    assert!(matches!(err, ChainError::UntrustedMetadata(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("storage SubtensorModule.SubnetworkN")
            && text.contains("as containing itself"),
        "{text}"
    );
    assert!(check_storage(&md, "SubtensorModule", "SubnetworkN").is_err());
    assert!(check_storage(&md, "SubtensorModule", "Uids").is_err());
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

#[test]
fn types_nested_too_deep_are_refused() {
    let Some(md) = hostile(|types, honest| {
        // `SubnetworkN`'s value: a chain of MAX_TYPE_DEPTH + 1 one-field
        // structs ending in the u16. Each new link gets a fresh id.
        let id = storage_value(honest, "SubnetworkN");
        let u16_def = ty_mut(types, id).clone();
        let base = types.types.iter().map(|t| t.id).max().expect("types") + 1;
        let template = types.types[0].ty.clone();
        let mut last = base;
        let mut leaf = template.clone();
        leaf.type_def = u16_def;
        types
            .types
            .push(scale_info::PortableType { id: base, ty: leaf });
        for i in 1..MAX_TYPE_DEPTH {
            let mut link = template.clone();
            link.type_def = one_field(last);
            last = base + i;
            types
                .types
                .push(scale_info::PortableType { id: last, ty: link });
        }
        *ty_mut(types, id) = one_field(last);
    }) else {
        return;
    };
    let err = check(&md, &[req::SUBNETWORK_N], false).expect_err("too deep");
    assert!(
        err.to_string()
            .contains(&format!("more than {MAX_TYPE_DEPTH} deep")),
        "{err}"
    );
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
