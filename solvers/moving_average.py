"""The exponential moving average that RMSProp, AdaDelta and Adam keep of the gradient (or of its
square), updated in place in Caffe's order of operations."""


def update_moving_average(average, decay, sample):
    """average = decay * average + (1 - decay) * sample"""
    average *= decay
    average += (1 - decay) * sample
