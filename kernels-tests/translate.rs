//! Metal and DX12 without the hardware: every entry point of every shader, specialised as the host
//! specialises it (matmul: every variant x transpose form, the SGEMM's
//! configurations x operand load widths too; the rest: default overrides), is
//! translated by naga to MSL, HLSL and SPIR-V with the options wgpu's backends pass, so a construct
//! one backend cannot express fails here, not on a user's Mac or Windows machine. (The output is
//! not compiled: that needs Apple's and Microsoft's compilers; the SPIR-V runs in the other tests.)
//! The cooperative matmul goes to MSL and SPIR-V only: wgpu has cooperative matrices on Metal and
//! Vulkan, not DX12.

#[path = "common/capabilities.rs"]
mod capabilities;

use aegpu::kernels::matmul::{Matmul, MatmulVariant, Transpose};
use aegpu::kernels::{SHADERS, conv};
use capabilities::capabilities;
use naga::back::PipelineConstants;
use naga::back::pipeline_constants::process_overrides;
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// What wgpu checks at run time on every backend: reads out of bounds give zero, writes are skipped.
fn bounds() -> BoundsCheckPolicies {
    let p = BoundsCheckPolicy::ReadZeroSkipWrite;
    BoundsCheckPolicies { index: p, buffer: p, image_load: p, binding_array: BoundsCheckPolicy::Unchecked }
}

/// The pipeline constants the host passes for `entry` of shader `name`: every specialisation
/// (matmul's variants x transpose forms, conv2d's channel blocks of 1 and 4).
fn specialisations(name: &str, entry: &str) -> Vec<Vec<(String, f64)>> {
    let mut all = Vec::new();
    for variant in MatmulVariant::ALL {
        for trans in Transpose::ALL {
            all.extend(Matmul::pipeline_keys(variant, trans));
        }
    }
    for conv_entry in ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"] {
        for channels in [1, 4] {
            all.push(conv::pipeline_key(conv_entry, Some(conv::channel_block(channels))));
        }
    }
    let mut keys: Vec<Vec<(String, f64)>> = all
        .iter()
        .filter(|key| key.shader.name == name && key.entry == entry)
        .map(|key| key.constants.iter().map(|&(k, v)| (k.to_string(), f64::from_bits(v))).collect())
        .collect();
    if keys.is_empty() {
        keys.push(Vec::new());
    }
    keys
}

/// Translates one specialised entry point to the three languages; returns the failures.
fn translate(name: &str, entry: &str, constants: &[(String, f64)]) -> Vec<String> {
    let source = SHADERS.iter().find(|(n, _)| *n == name).expect("a registered shader").1;
    let module = naga::front::wgsl::parse_str(source).expect("parses (see shaders.rs)");
    let caps = capabilities(name);
    let info = Validator::new(ValidationFlags::all(), caps).validate(&module).expect("validates");
    let pc: PipelineConstants = constants.iter().cloned().collect();
    let stage = naga::ShaderStage::Compute;
    let (module, info) =
        process_overrides(&module, &info, Some((stage, entry)), &pc).expect("specialises (see shaders.rs)");
    let (module, info) = (module.into_owned(), info.into_owned());
    let what = format!("{name}::{entry} {constants:?}");
    let mut failures = Vec::new();

    // Metal: MSL 2.4 (macOS 12 / iOS 15, what wgpu asks for subgroup operations), bindings faked
    // as wgpu's binding map would assign them.
    let msl = naga::back::msl::Options {
        lang_version: (2, 4),
        fake_missing_bindings: true,
        bounds_check_policies: bounds(),
        zero_initialize_workgroup_memory: true,
        ..Default::default()
    };
    let msl_pipeline = naga::back::msl::PipelineOptions {
        entry_point: Some((stage, entry.to_string())),
        ..Default::default()
    };
    match naga::back::msl::write_string(&module, &info, &msl, &msl_pipeline) {
        Ok((text, _)) if text.contains("kernel void") => {}
        Ok(_) => failures.push(format!("{what} -> MSL: no kernel function in the output")),
        Err(e) => failures.push(format!("{what} -> MSL: {e}")),
    }

    // DX12: shader model 6.0 (DXC; wave intrinsics for the subgroup kernel need it), as wgpu's
    // dx12 backend with its default options; 6.2 for f16 (wgpu offers SHADER_F16 on DX12 only there).
    let f16 = caps.contains(Capabilities::SHADER_FLOAT16);
    let hlsl = naga::back::hlsl::Options {
        shader_model: if f16 {
            naga::back::hlsl::ShaderModel::V6_2
        } else {
            naga::back::hlsl::ShaderModel::V6_0
        },
        fake_missing_bindings: true,
        zero_initialize_workgroup_memory: true,
        restrict_indexing: true,
        force_loop_bounding: true,
        ..Default::default()
    };
    let hlsl_pipeline = naga::back::hlsl::PipelineOptions { entry_point: Some((stage, entry.to_string())) };
    let mut out = String::new();
    let mut writer = naga::back::hlsl::Writer::new(&mut out, &hlsl, &hlsl_pipeline);
    // wgpu offers cooperative matrices on Vulkan and Metal only (naga's HLSL writer has none): the
    // cooperative matmul is never built on DX12.
    let hlsl_result = match caps.contains(Capabilities::COOPERATIVE_MATRIX) {
        true => None,
        false => Some(writer.write(&module, &info, None)),
    };
    match hlsl_result {
        Some(Err(e)) => failures.push(format!("{what} -> HLSL: {e}")),
        Some(Ok(_)) if !out.contains("[numthreads(") => {
            failures.push(format!("{what} -> HLSL: no compute entry point in the output"))
        }
        _ => {}
    }

    // Vulkan: SPIR-V 1.3 where subgroup operations need it, 1.0 otherwise.
    let spv = naga::back::spv::Options {
        lang_version: if caps.contains(Capabilities::SUBGROUP) { (1, 3) } else { (1, 0) },
        bounds_check_policies: bounds(),
        ..Default::default()
    };
    let spv_pipeline =
        naga::back::spv::PipelineOptions { shader_stage: stage, entry_point: entry.to_string() };
    if let Err(e) = naga::back::spv::write_vec(&module, &info, &spv, Some(&spv_pipeline)) {
        failures.push(format!("{what} -> SPIR-V: {e}"));
    }
    failures
}

#[test]
fn every_specialised_entry_point_translates_to_msl_hlsl_and_spirv() {
    let mut failures = Vec::new();
    let mut translated = 0;
    for (name, source) in SHADERS {
        let module = naga::front::wgsl::parse_str(source).expect("parses");
        let overrides: Vec<&str> = module.overrides.iter().filter_map(|(_, o)| o.name.as_deref()).collect();
        for ep in &module.entry_points {
            let specs = specialisations(name, &ep.name);
            // A shader with override constants must have the host's specialisations listed above
            // (an entry point that leaves them at their defaults, like conv2d_backward_bias, is
            // translated with the defaults).
            assert!(
                overrides.is_empty() || !specs[0].is_empty() || ep.name == "conv2d_backward_bias",
                "shaders/{name}.wgsl has override constants {overrides:?}: add the host's specialisations \
                 of {} to this test",
                ep.name
            );
            for constants in specs {
                failures.extend(translate(name, &ep.name, &constants));
                translated += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {translated} translations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(translated >= SHADERS.len());
}
