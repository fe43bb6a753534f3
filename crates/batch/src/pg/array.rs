//! One column of a batch as a PostgreSQL array parameter, for
//! `INSERT ... SELECT * FROM unnest($1::t[], ...)`: the values stay borrowed from
//! the rows and are encoded straight into the array's binary format.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// The values of one column, in row order.
#[derive(Debug)]
pub(crate) struct Column<'a>(pub(crate) Vec<&'a (dyn ToSql + Sync)>);

impl ToSql for Column<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let Kind::Array(element) = ty.kind() else {
            return Err(format!("a batch column is sent as an array, not as {ty}").into());
        };
        let len = i32::try_from(self.0.len()).map_err(|_| "more than 2^31 rows in one batch")?;
        out.put_i32(1); // dimensions
        let flags_at = out.len();
        out.put_i32(0); // has nulls, set below
        out.put_u32(element.oid());
        out.put_i32(len);
        out.put_i32(1); // lower bound
        let mut nulls = false;
        for value in &self.0 {
            let len_at = out.len();
            out.put_i32(0);
            match value.to_sql_checked(element, out)? {
                IsNull::Yes => {
                    nulls = true;
                    out[len_at..len_at + 4].copy_from_slice(&(-1i32).to_be_bytes());
                }
                IsNull::No => {
                    let n =
                        i32::try_from(out.len() - len_at - 4).map_err(|_| "a value above 2 GiB")?;
                    out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
                }
            }
        }
        out[flags_at..flags_at + 4].copy_from_slice(&i32::from(nulls).to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Array(_))
    }

    to_sql_checked!();
}
