# JVM flags shared by the server and client wrappers and by build.sh's CDS
# training runs (sourced). Start-up is most of a client's run time: C1 only,
# no perf-data file, no Netty JFR events, JVM logging on stderr. TLS uses
# grpc-netty-shaded's default provider (OpenSSL: netty-tcnative's BoringSSL)
# except with P-521 certificates, which BoringSSL lacks: ClientMain's
# channelFor and ServerMain pick the JDK's provider for those.
# Netty turns a PEM key into an in-memory PKCS#12 key store for each SSL
# context, encrypting and decrypting the key with 10,000 PBKDF2 rounds each
# way (JFR: ~0.15 s of a client's CPU with mtls); the store never leaves the
# process, so one round.
JAVA_FLAGS="-XX:TieredStopAtLevel=1 -XX:-UsePerfData -Xlog:disable -Xlog:all=warning:stderr -Dio.grpc.netty.shaded.io.netty.jfr.enabled=false -Dkeystore.pkcs12.keyPbeIterationCount=1"
# Clients also use the serial collector: a client process runs a pair's whole
# script (4 MiB messages included) and with the default G1 it grew to ~1.3 GiB
# resident and spent a third more CPU; serial: ~0.4 GiB.
JAVA_CLIENT_FLAGS="-XX:+UseSerialGC"
# Servers too: one serves every client of a run's TLS mode and key type, and
# with G1 it peaked at 0.9 GiB resident; serial: 0.73 GiB, a little less CPU.
JAVA_SERVER_FLAGS="-XX:+UseSerialGC"
