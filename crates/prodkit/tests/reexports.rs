//! Every module path of the umbrella, named once.

#[cfg(feature = "batch")]
#[test]
fn batch_is_the_whole_crate() {
    use prodkit::batch::{Batcher, FnSink};
    let batcher = Batcher::builder()
        .build(|| Ok(FnSink(|_: &[u32]| Ok(()))))
        .unwrap();
    let ticket = batcher.submit(7).unwrap();
    let stats = batcher.shutdown(std::time::Duration::from_secs(5)).stats;
    assert!(ticket.wait().is_ok());
    assert_eq!(stats.acked, 1);
    let _: fn(&str, &str, &[(&str, prodkit::batch::pg::postgres::types::Type)]) -> _ =
        prodkit::batch::pg::PgTarget::new;
    let _: fn() -> prodkit_batch::Builder<u32> = prodkit::batch::Batcher::<u32>::builder;
}

#[cfg(feature = "cache")]
#[test]
fn cache_is_the_whole_crate() {
    use prodkit::cache::{Cache, Compute, RemovalCause};
    let cache: Cache<u32, u32> = Cache::builder(10).build().unwrap();
    assert_eq!(cache.compute(1, |_| Compute::Insert(2)), Some(2));
    assert_ne!(RemovalCause::Size, RemovalCause::Expired);
    let _: fn(u64) -> prodkit_cache::Builder<u32, u32> = prodkit::cache::Cache::<u32, u32>::builder;
}

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

#[cfg(feature = "ratelimit")]
#[test]
fn ratelimit_is_the_whole_crate() {
    use prodkit::ratelimit::{KeyedRateLimiter, Quota, RateLimiter};
    let quota = Quota::per_second(10).unwrap().with_burst(1).unwrap();
    let limiter = RateLimiter::new(quota);
    assert!(limiter.check().is_allowed());
    assert!(!limiter.check().is_allowed());
    let keyed: KeyedRateLimiter<str> = KeyedRateLimiter::new(quota, 8).unwrap();
    assert!(keyed.check("a").is_allowed());
    let _: fn(prodkit_ratelimit::Quota) -> prodkit_ratelimit::RateLimiter =
        prodkit::ratelimit::RateLimiter::new;
}

#[cfg(feature = "ratelimit-tokio")]
#[test]
fn ratelimit_tokio_futures_are_there() {
    let limiter =
        prodkit::ratelimit::RateLimiter::new(prodkit::ratelimit::Quota::per_second(10).unwrap());
    let _future = limiter.until_ready();
}

#[cfg(feature = "netcfg")]
#[test]
fn netcfg_is_the_whole_crate() {
    use prodkit::netcfg::{ClientConfig, DbPoolConfig, ServerConfig};
    let server: prodkit_netcfg::ServerConfig = ServerConfig::internal();
    server.validate().unwrap();
    ClientConfig::internal().validate_against(&server).unwrap();
    DbPoolConfig::internal().validate().unwrap();
}

#[cfg(all(feature = "netcfg-hyper", feature = "netcfg-reqwest"))]
#[test]
fn netcfg_adapters_are_reachable() {
    use prodkit::netcfg::{ClientConfig, HttpServer, ServerConfig};
    HttpServer::new(&ServerConfig::internal()).unwrap();
    let _builder = ClientConfig::internal().reqwest_builder();
}

#[cfg(feature = "bufpool")]
#[test]
fn bufpool_is_the_whole_crate() {
    let pool: prodkit_bufpool::BufPool = prodkit::bufpool::BufPool::default();
    let buf: prodkit::bufpool::PooledBuf<'_> = pool.get(10);
    assert!(buf.capacity() >= 10);
}

#[cfg(feature = "jsonfast")]
#[test]
fn jsonfast_is_the_whole_crate() {
    let mut decoder: prodkit_jsonfast::Decoder = prodkit::jsonfast::Decoder::default();
    let v: Vec<u8> = decoder.decode(b"[1]").expect("decodes");
    assert_eq!(v, [1]);
}
