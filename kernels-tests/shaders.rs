//! naga validation of every shader in `kernels::SHADERS`, with no GPU: parse, validate, and validate
//! again every override specialisation the host builds (matmul's TRANS_A / TRANS_B). Also checks the
//! header comment each shader starts with, and that every entry point a launcher names exists with
//! the workgroup size its dispatch assumes.

#[path = "common/capabilities.rs"]
mod capabilities;

use aegpu::kernels::matmul::{Matmul, MatmulVariant, Transpose};
use aegpu::kernels::{SHADERS, shader_source};
use capabilities::capabilities;
use naga::back::PipelineConstants;
use naga::back::pipeline_constants::process_overrides;
use naga::valid::{ModuleInfo, ValidationFlags, Validator};

/// (shader, entry point, workgroup size) for every pipeline the launchers build. The sizes are what
/// the host-side dispatch math assumes (`grid_1d(n, 256)`, `grid_1d(n, 1024)` with 4 items per
/// invocation, colsum's ceil(cols/32), matmul's ceil(N/64) x ceil(M/64) with 4x4 per invocation).
const ENTRY_POINTS: &[(&str, &str, [u32; 3])] = &[
    ("matmul", "matmul_reg", [16, 16, 1]),
    ("matmul", "matmul_tiled", [16, 16, 1]),
    ("matmul_subgroup", "matmul_subgroup", [64, 1, 1]),
    ("matmul_sgemm_a1_b1", "sgemm_8x8", [256, 1, 1]),
    ("matmul_sgemm_a1_b1", "sgemm_4x4", [256, 1, 1]),
    ("matmul_sgemm_a1_b4", "sgemm_8x8", [256, 1, 1]),
    ("matmul_sgemm_a1_b4", "sgemm_4x4", [256, 1, 1]),
    ("matmul_sgemm_a4_b1", "sgemm_8x8", [256, 1, 1]),
    ("matmul_sgemm_a4_b1", "sgemm_4x4", [256, 1, 1]),
    ("matmul_sgemm_a4_b4", "sgemm_8x8", [256, 1, 1]),
    ("matmul_sgemm_a4_b4", "sgemm_4x4", [256, 1, 1]),
    ("activation", "act_forward", [256, 1, 1]),
    ("activation", "act_backward", [256, 1, 1]),
    ("activation", "act_backward_colsum", [32, 8, 1]),
    ("reduce", "colsum", [32, 8, 1]),
    ("loss", "loss_forward_backward", [256, 1, 1]),
    ("optimizer", "sgd_momentum", [256, 1, 1]),
    ("optimizer", "adam", [256, 1, 1]),
    ("gather", "gather_u8", [256, 1, 1]),
    ("random", "random_bits", [256, 1, 1]),
    ("random", "random_uniform", [256, 1, 1]),
    ("random", "random_normal", [256, 1, 1]),
    ("random", "corrupt_gaussian", [256, 1, 1]),
    ("random", "corrupt_masking", [256, 1, 1]),
    ("random", "corrupt_salt_pepper", [256, 1, 1]),
    ("random", "dropout_mask", [256, 1, 1]),
    ("random", "multiply", [256, 1, 1]),
    ("vae", "reparam_forward", [256, 1, 1]),
    ("vae", "reparam_backward", [256, 1, 1]),
    ("vae", "reparam_mean", [256, 1, 1]),
    ("vae", "kl_partials", [256, 1, 1]),
    ("penalty", "activity_penalty", [256, 1, 1]),
    ("penalty", "contractive_rows", [64, 1, 1]),
    ("penalty", "contractive_h", [64, 1, 1]),
    ("penalty", "contractive_weight", [64, 1, 1]),
    ("conv2d", "conv2d_forward", [256, 1, 1]),
    ("conv2d", "conv2d_backward_input", [256, 1, 1]),
    ("conv2d", "conv2d_backward_weight", [64, 1, 1]),
    ("conv2d", "conv2d_backward_bias", [64, 1, 1]),
    ("conv_gemm", "im2col", [256, 1, 1]),
    ("conv_gemm", "col2im", [256, 1, 1]),
    ("conv_gemm", "cnhw_to_nchw", [256, 1, 1]),
    ("conv_gemm", "nchw_to_cnhw", [256, 1, 1]),
    ("conv_implicit_gemm", "forward", [64, 1, 1]),
    ("conv_implicit_gemm", "backward_input", [64, 1, 1]),
    ("conv_implicit_gemm", "backward_weight", [64, 1, 1]),
    ("pool", "maxpool2x2_forward", [256, 1, 1]),
    ("pool", "maxpool2x2_backward", [256, 1, 1]),
    ("pool", "upsample2x_forward", [256, 1, 1]),
    ("pool", "upsample2x_backward", [256, 1, 1]),
    ("decode_to_texture", "decode_to_texture", [16, 16, 1]),
    ("encode_from_texture", "encode_from_texture", [256, 1, 1]),
    ("softmax_ce", "softmax_ce", [64, 1, 1]),
    ("recirculation", "recirc_mix", [256, 1, 1]),
    ("recirculation", "recirc_diff", [256, 1, 1]),
];

fn parse(name: &str, source: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl does not parse:\n{}", e.emit_to_string(source)))
}

fn validate(name: &str, what: &str, source: &str, module: &naga::Module) -> ModuleInfo {
    Validator::new(ValidationFlags::all(), capabilities(name)).validate(module).unwrap_or_else(|e| {
        panic!("shaders/{name}.wgsl ({what}) fails validation:\n{}", e.emit_to_string(source))
    })
}

#[test]
fn every_shader_parses_and_validates() {
    assert!(!SHADERS.is_empty());
    for (name, source) in SHADERS {
        let module = parse(name, source);
        validate(name, "as written", source, &module);
        for ep in &module.entry_points {
            assert_eq!(
                ep.stage,
                naga::ShaderStage::Compute,
                "{name}::{} is not a compute entry point",
                ep.name
            );
        }
    }
}

/// A registered shader with no entry point can never be dispatched (a placeholder left in SHADERS).
#[test]
fn every_shader_has_an_entry_point() {
    let empty: Vec<&str> = SHADERS
        .iter()
        .filter(|(name, source)| parse(name, source).entry_points.is_empty())
        .map(|(n, _)| *n)
        .collect();
    assert!(empty.is_empty(), "registered in kernels::SHADERS without any entry point: {empty:?}");
}

#[test]
fn shader_registry_has_unique_names_and_lookup_works() {
    let mut names: Vec<&str> = SHADERS.iter().map(|(n, _)| *n).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate shader names in SHADERS");
    for (name, source) in SHADERS {
        assert_eq!(shader_source(name), Some(*source));
    }
    for (shader, _, _) in ENTRY_POINTS {
        assert!(names.contains(shader), "a launcher uses shader '{shader}', missing from SHADERS");
    }
}

#[test]
fn every_shader_starts_with_a_header_comment() {
    for (name, source) in SHADERS {
        let head: Vec<&str> = source.lines().take(3).collect();
        assert!(
            head.iter().any(|l| l.trim_start().starts_with("//") && l.trim_start().len() > 3),
            "shaders/{name}.wgsl: no `//` header comment in its first 3 lines: {head:?}"
        );
    }
}

#[test]
fn every_launcher_entry_point_exists_with_expected_workgroup_size() {
    for &(shader, entry, size) in ENTRY_POINTS {
        let module = parse(shader, shader_source(shader).expect("a registered shader"));
        let ep = module
            .entry_points
            .iter()
            .find(|ep| ep.name == entry)
            .unwrap_or_else(|| panic!("shaders/{shader}.wgsl has no entry point '{entry}'"));
        assert_eq!(ep.stage, naga::ShaderStage::Compute, "{shader}::{entry}");
        assert_eq!(ep.workgroup_size, size, "{shader}::{entry}: workgroup size");
        assert!(ep.workgroup_size_overrides.is_none(), "{shader}::{entry}: workgroup size must be a literal");
    }
    // And the shaders listed here have no entry point no launcher uses (dead code, or this list out
    // of date). Shaders added later are covered by the parse / validate / header tests only.
    for (name, source) in SHADERS.iter().filter(|(n, _)| ENTRY_POINTS.iter().any(|e| e.0 == *n)) {
        for ep in &parse(name, source).entry_points {
            assert!(
                ENTRY_POINTS.iter().any(|&(s, e, _)| s == *name && e == ep.name),
                "{name}::{} is not in this test's list of launched entry points",
                ep.name
            );
        }
    }
}

/// Applies `constants` for `entry` the way wgpu does at pipeline creation, checks each override
/// became a constant of the requested value, and validates the result with every override resolved.
fn specialise_and_validate(name: &str, source: &str, entry: &str, constants: &[(&str, f64)]) {
    let what = format!("{entry} with {constants:?}");
    let module = parse(name, source);
    let info = validate(name, "as written", source, &module);
    let pc: PipelineConstants = constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (special, _) = process_overrides(&module, &info, Some((naga::ShaderStage::Compute, entry)), &pc)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl: specialising {what} failed: {e}"));
    assert_eq!(special.entry_points.len(), 1, "{name} {what}: only the chosen entry point remains");
    assert_eq!(special.entry_points[0].name, entry);
    // Only matmul passes constants: TRANS_A / TRANS_B are bools, the SGEMM's tile sizes u32.
    for &(constant, value) in constants {
        let (_, c) = special
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(constant))
            .unwrap_or_else(|| panic!("{name} {what}: override {constant} did not become a constant"));
        let want = if constant.starts_with("TRANS_") {
            naga::Literal::Bool(value != 0.0)
        } else {
            naga::Literal::U32(value as u32)
        };
        match special.global_expressions[c.init] {
            naga::Expression::Literal(lit) => {
                assert_eq!(lit, want, "{name} {what}: value of {constant}")
            }
            ref other => panic!("{name} {what}: {constant} = {other:?}, not a literal"),
        }
    }
    // `validate_resolved_overrides` rejects any override expression left unevaluated.
    Validator::new(ValidationFlags::all(), capabilities(name))
        .validate_resolved_overrides(&special)
        .unwrap_or_else(|e| {
            panic!("shaders/{name}.wgsl ({what}) fails validation:\n{}", e.emit_to_string(source))
        });
}

#[test]
fn matmul_specialisations_validate() {
    let mut seen = Vec::new();
    for variant in MatmulVariant::ALL {
        for trans in Transpose::ALL {
            // Exactly the keys (and so the constants) the host hands to wgpu.
            for key in Matmul::pipeline_keys(variant, trans) {
                let source = key.shader.source;
                // Registered, so the tuner's cache key (a hash of SHADERS) changes with it.
                assert_eq!(shader_source(key.shader.name), Some(source), "{} in SHADERS", key.shader.name);
                let module = parse(key.shader.name, source);
                let mut names: Vec<&str> =
                    module.overrides.iter().filter_map(|(_, o)| o.name.as_deref()).collect();
                names.sort();
                let want_names: &[&str] = match key.shader.name {
                    n if n.starts_with("matmul_sgemm") => {
                        &["BK", "BM", "BN", "MICRO", "TRANS_A", "TRANS_B", "WG_X"]
                    }
                    // SUBGROUP_SIZE: set by the pipeline cache from the adapter (default 32 here).
                    n if n.starts_with("matmul_coop") => &["SUBGROUP_SIZE", "TRANS_A", "TRANS_B"],
                    _ => &["TRANS_A", "TRANS_B"],
                };
                assert_eq!(names, want_names, "{}'s override constants", key.shader.name);
                assert_eq!(key.entry, variant.entry());
                let constants: Vec<(&str, f64)> =
                    key.constants.iter().map(|&(k, v)| (k, f64::from_bits(v))).collect();
                let flags: Vec<f64> = constants.iter().take(2).map(|c| c.1).collect();
                let want = match trans {
                    Transpose::Nn => [0.0, 0.0],
                    Transpose::Nt => [0.0, 1.0],
                    Transpose::Tn => [1.0, 0.0],
                };
                assert_eq!(
                    constants.iter().take(2).map(|c| c.0).collect::<Vec<_>>(),
                    ["TRANS_A", "TRANS_B"],
                    "{trans:?}"
                );
                assert_eq!(flags, want, "{variant:?} {trans:?}: TRANS_A/TRANS_B values");
                specialise_and_validate(key.shader.name, source, key.entry, &constants);
                seen.push((variant, trans, key.shader.name));
            }
        }
    }
    // Reg, Tiled, Subgroup and the three cooperative ones: one pipeline per transpose form; each
    // SGEMM: 32 (operand loads scalar, vec4, f16 or vec4 of f16 for each operand, times C stored as
    // f32 or f16).
    assert_eq!(seen.len(), 6 * 3 + 3 * 3 * 32);
}

/// Every entry point of every shader goes through the same specialisation as wgpu's pipeline
/// creation with no constants given (the defaults; the only specialisation the host builds for all
/// but matmul), and an unknown constant is rejected rather than ignored.
#[test]
fn every_entry_point_specialises_with_default_overrides() {
    for (name, source) in SHADERS {
        let module = parse(name, source);
        for ep in &module.entry_points {
            specialise_and_validate(name, source, &ep.name, &[]);
        }
        let info = validate(name, "as written", source, &module);
        let bogus: PipelineConstants = [("NO_SUCH_CONSTANT".to_string(), 1.0)].into_iter().collect();
        assert!(
            process_overrides(&module, &info, None, &bogus).is_err(),
            "{name}: unknown constant accepted"
        );
    }
}
