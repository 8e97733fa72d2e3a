//! Fixture `hostile_scalar`: a scalar function `hostile_scalar(mode BIGINT, x DOUBLE) ->
//! DOUBLE` (world `udf`) that returns `x` for rows of mode 0 and misbehaves when any row of
//! the batch asks for it: mode 1 loops forever, 2 allocates and writes 1 MiB blocks
//! forever, 3 returns one value more than there are rows, 4 returns a BIGINT column, 5
//! returns an error, 6 panics.

use laminar_guest_scalar::bindings::exports::laminar::udaf::scalar::{
    Column, ColumnData, DataType, Guest, Signature,
};

/// The exported function.
pub struct HostileScalar;

impl Guest for HostileScalar {
    fn describe() -> Signature {
        Signature {
            name: "hostile_scalar".to_string(),
            args: vec![DataType::Int64, DataType::Float64],
            returns: DataType::Float64,
            deterministic: true,
        }
    }

    fn evaluate(rows: u32, args: Vec<Column>) -> Result<Column, String> {
        let (ColumnData::Int64(modes), ColumnData::Float64(xs)) = (&args[0].data, &args[1].data)
        else {
            return Err("hostile_scalar takes (BIGINT, DOUBLE)".to_string());
        };
        let mode = modes.iter().copied().max().unwrap_or(0);
        match mode {
            1 => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            2 => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&blocks);
                }
            }
            3 => {
                let mut values = xs.clone();
                values.push(0.0);
                Ok(Column {
                    data: ColumnData::Float64(values),
                    validity: None,
                })
            }
            4 => Ok(Column {
                data: ColumnData::Int64(vec![7; rows as usize]),
                validity: None,
            }),
            5 => Err("hostile_scalar refuses mode 5".to_string()),
            6 => panic!("hostile_scalar panics in mode 6"),
            _ => Ok(Column {
                data: ColumnData::Float64(xs.clone()),
                validity: args[1].validity.clone(),
            }),
        }
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest_scalar::bindings::__export_udf_world!(HostileScalar with_types_in laminar_guest_scalar::bindings);
