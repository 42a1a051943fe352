//! The local Docker engine backend: dind daemons, a registry and builder containers on a private network.
