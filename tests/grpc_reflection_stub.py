"""A minimal server-reflection client: Debian ships no grpc_reflection package,
so this builds the two reflection messages it needs with protobuf's descriptor API."""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_POOL = descriptor_pool.DescriptorPool()
_FILE = descriptor_pb2.FileDescriptorProto(name="reflection_subset.proto",
                                           package="grpc.reflection.v1alpha", syntax="proto3")
_request = _FILE.message_type.add(name="ServerReflectionRequest")
_request.field.add(name="host", number=1, type=9, label=1)
_request.field.add(name="list_services", number=7, type=9, label=1)
_service = _FILE.message_type.add(name="ServiceResponse")
_service.field.add(name="name", number=1, type=9, label=1)
_list = _FILE.message_type.add(name="ListServiceResponse")
_list.field.add(name="service", number=1, type=11, label=3,
                type_name=".grpc.reflection.v1alpha.ServiceResponse")
_response = _FILE.message_type.add(name="ServerReflectionResponse")
_response.field.add(name="valid_host", number=1, type=9, label=1)
_response.field.add(name="list_services_response", number=6, type=11, label=1,
                    type_name=".grpc.reflection.v1alpha.ListServiceResponse")
_POOL.Add(_FILE)
Request = message_factory.MessageFactory(_POOL).GetPrototype(
    _POOL.FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest"))
Response = message_factory.MessageFactory(_POOL).GetPrototype(
    _POOL.FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse"))


def list_services(channel):
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=Response.FromString)
    responses = call(iter([Request(list_services="*")]), timeout=10)
    first = next(responses)
    return [service.name for service in first.list_services_response.service]
