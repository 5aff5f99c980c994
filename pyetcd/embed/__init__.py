"""The client port: gRPC over our own HTTP/2 and plain HTTP/1.1, sharing one listener."""
from .serve import CallContext, ClientServer, GrpcMethod, HttpRequest, HttpResponse, listen, serve, unary_methods

__all__ = ["CallContext", "ClientServer", "GrpcMethod", "HttpRequest", "HttpResponse", "listen", "serve", "unary_methods"]
