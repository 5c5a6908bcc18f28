"""The compiled Caffe schema (`caffe_pb2`), generated from proto/caffe.proto at build time."""
