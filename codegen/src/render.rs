//! Rust files rendered on every core: each unit of a file (a run of prost's items, the JSON
//! impls of a few messages, one service) is generated, parsed and printed on its own.
//!
//! prettyplease prints a file item by item with no state between items, so printing runs of
//! whole top-level items separately and concatenating them gives the bytes of printing the file
//! at once (the goldens hold it). Small units keep every core busy and each syntax tree small:
//! a whole package's tree is hundreds of megabytes for the large googleapis packages.

use proc_macro2::TokenStream;
use prost_types::FileDescriptorProto;
use rayon::prelude::*;

use crate::emit;
use crate::error::{Error, Result};
use crate::model::{Message, Model, Package, RustPath, Service};

/// Messages whose JSON impls make one unit: enough to amortize a parse, few enough to spread.
const MESSAGES_PER_UNIT: usize = 16;

/// Target size of a run of prost's items printed on its own.
const PROST_RUN_BYTES: usize = 64 * 1024;

/// The formatted Rust code of every package, in `model.packages` order: prost's messages (from
/// every loaded file), then the JSON impls, then the services. prost-build runs while the other
/// units are printed.
pub(crate) fn packages(model: &Model, files: Vec<FileDescriptorProto>) -> Result<Vec<String>> {
    packages_in(model, files, MESSAGES_PER_UNIT, PROST_RUN_BYTES)
}

fn packages_in(
    model: &Model,
    files: Vec<FileDescriptorProto>,
    messages_per_unit: usize,
    prost_run_bytes: usize,
) -> Result<Vec<String>> {
    let ours: Vec<(usize, Unit<'_>)> = model
        .packages
        .iter()
        .enumerate()
        .flat_map(|(index, package)| {
            units(package, messages_per_unit).map(move |unit| (index, unit))
        })
        .collect();
    let (prost, ours) = rayon::join(
        || emit::messages::emit(files, &model.packages),
        || {
            ours.par_iter()
                .map(|(package, unit)| Ok((*package, print(unit.tokens())?)))
                .collect::<Result<Vec<_>>>()
        },
    );
    let (prost, ours) = (prost?, ours?);
    let count = model.packages.len();
    let prost_code = |index: usize| {
        prost
            .get(&model.packages[index].name)
            .map_or("", String::as_str)
    };

    let runs: Vec<(usize, &str)> = (0..count)
        .flat_map(|index| {
            item_runs(prost_code(index), prost_run_bytes)
                .into_iter()
                .map(move |run| (index, run))
        })
        .collect();
    let printed: Vec<(usize, Option<String>)> = runs
        .par_iter()
        .map(|(index, run)| {
            let file = syn::parse_file(run).ok();
            (*index, file.map(|file| prettyplease::unparse(&file)))
        })
        .collect();
    let mut parts: Vec<Vec<String>> = vec![Vec::new(); count];
    let mut whole = vec![false; count];
    for (index, text) in printed {
        match text {
            Some(text) => parts[index].push(text),
            None => whole[index] = true,
        }
    }
    // A run that does not parse alone (a cut inside an item): print the package's prost code
    // at once.
    for index in (0..count).filter(|&i| whole[i]) {
        parts[index] = vec![print_text(prost_code(index))?];
    }
    drop(runs);
    drop(prost);
    for (index, text) in ours {
        parts[index].push(text);
    }
    // Each part is freed once copied: the output is held about once, not twice.
    Ok(parts
        .into_iter()
        .map(|parts| {
            let mut file = String::with_capacity(parts.iter().map(String::len).sum());
            for part in parts {
                file.push_str(&part);
            }
            file
        })
        .collect())
}

/// A piece of a package's file that is generated and printed on its own.
enum Unit<'m> {
    /// The JSON impls of some of the package's messages.
    Messages(&'m [Message]),
    /// The JSON impls of the package's enums.
    Enums(&'m [RustPath]),
    /// A service's contract, trait, client and server.
    Service(&'m Service),
}

impl Unit<'_> {
    fn tokens(&self) -> TokenStream {
        match self {
            Unit::Messages(messages) => messages.iter().map(emit::json::message).collect(),
            Unit::Enums(paths) => paths.iter().map(emit::json::proto_enum).collect(),
            Unit::Service(service) => emit::service::emit(service),
        }
    }
}

/// The units of a package after prost's code, in file order.
fn units(package: &Package, messages_per_unit: usize) -> impl Iterator<Item = Unit<'_>> {
    let messages = package
        .messages
        .chunks(messages_per_unit)
        .map(Unit::Messages);
    let enums = (!package.enums.is_empty()).then_some(Unit::Enums(&package.enums));
    let services = package.services.iter().map(Unit::Service);
    messages.chain(enums).chain(services)
}

/// Prints generated tokens as formatted Rust.
fn print(tokens: TokenStream) -> Result<String> {
    let file = syn::parse2(tokens).map_err(internal)?;
    Ok(prettyplease::unparse(&file))
}

/// Prints generated Rust source text as formatted Rust.
fn print_text(code: &str) -> Result<String> {
    let file = syn::parse_file(code).map_err(internal)?;
    Ok(prettyplease::unparse(&file))
}

fn internal(e: syn::Error) -> Error {
    Error::Usage(format!(
        "internal error: generated code does not parse: {e}"
    ))
}

/// Cuts `code` into runs of at least `min` bytes, each ending after a `}` line in column 0
/// (where prost-build ends a top-level item).
fn item_runs(code: &str, min: usize) -> Vec<&str> {
    let mut runs = Vec::new();
    let mut start = 0;
    while code.len() - start > 2 * min {
        let mut from = start + min;
        while !code.is_char_boundary(from) {
            from += 1;
        }
        let Some(cut) = code[from..].find("\n}\n").map(|i| from + i + 3) else {
            break;
        };
        runs.push(&code[start..cut]);
        start = cut;
    }
    if start < code.len() {
        runs.push(&code[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEMS: &str = "struct A {\n    a: u8,\n}\nstruct B {\n    b: u8,\n}\nstruct C;\n";

    #[test]
    fn runs_end_after_a_top_level_item_and_cover_the_code() {
        let runs = item_runs(ITEMS, 4);
        assert_eq!(runs.concat(), ITEMS);
        assert!(runs.len() > 1, "{runs:?}");
        for run in &runs[..runs.len() - 1] {
            assert!(run.ends_with("\n}\n"), "{run:?}");
        }
    }

    #[test]
    fn printing_runs_apart_gives_the_bytes_of_printing_the_whole() {
        let apart: String = item_runs(ITEMS, 4)
            .into_iter()
            .map(|run| print_text(run).unwrap())
            .collect();
        assert_eq!(apart, print_text(ITEMS).unwrap());
    }

    /// Every package of `proto/`, printed in units of one message and runs of prost items as
    /// small as they come, is the package printed as one file.
    #[test]
    fn packages_printed_in_units_are_the_packages_printed_whole() {
        let inputs = crate::load::Inputs {
            proto_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../proto").into()),
            files: Vec::new(),
            includes: Vec::new(),
            skip_unsupported: false,
        };
        let mut warnings = Vec::new();
        let loaded = crate::load::load(&inputs, &mut warnings).unwrap();
        let model = crate::model::build(&loaded, &Default::default(), &mut warnings).unwrap();
        let prost = emit::messages::emit(loaded.files.clone(), &model.packages).unwrap();
        let in_units = packages_in(&model, loaded.files, 1, 1).unwrap();
        for (package, printed) in model.packages.iter().zip(in_units) {
            let mut whole = prost[&package.name].clone();
            for unit in units(package, usize::MAX) {
                whole.push_str(&unit.tokens().to_string());
            }
            assert!(
                package.messages.len() > 1,
                "{}: too small to split",
                package.name
            );
            assert_eq!(printed, print_text(&whole).unwrap(), "{}", package.name);
        }
    }

    #[test]
    fn empty_code_has_no_runs() {
        assert!(item_runs("", 4).is_empty());
    }
}
