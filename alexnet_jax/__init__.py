"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) in JAX/Flax: model, data, parallel training."""
