//! Every module path of the umbrella, named once.

#[cfg(feature = "pool")]
#[test]
fn pool_is_the_whole_crate() {
    use prodkit::pool::{Overload, Pool};
    let pool = Pool::builder()
        .workers(1)
        .overload(Overload::Reject)
        .build()
        .unwrap();
    assert_eq!(pool.submit(|| 2 + 2).unwrap().join(), Ok(4));
    let _: fn() -> prodkit_pool::Builder = prodkit::pool::Pool::builder;
}
