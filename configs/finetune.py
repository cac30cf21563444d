"""Fine-tuning a pretrained AlexNet on your own photos: a folder of class sub-folders.

  python -m alexnet_jax.tools.import_torchvision --weights=alexnet-owt-7be5be79.pth \
      --workdir=runs/torchvision
  python -m alexnet_jax.main --config=configs/finetune.py --workdir=runs/cats_dogs \
      --config.data.name=folder:photos --config.model.num_classes=2
  python -m alexnet_jax.tools.predict --workdir=runs/cats_dogs new_photos/

photos/ holds train/<class>/ and val/<class>/ (or set data.train_split='train[:90%]' and
data.eval_split='train[90%:]'). FC8 starts afresh with model.num_classes outputs; the other layers
start from init_from. Only the classifier (FC6-FC8) trains by default: a few hundred photos are
enough; set optimizer.trainable='all' (and a lower learning rate) with thousands.
"""
from configs import torchvision


def get_config():
  config = torchvision.get_config()
  config.init_from = 'runs/torchvision'
  config.num_epochs = 10.0
  config.log_every_steps = 10
  config.eval_every_steps = 100
  config.data.name = 'folder:photos'
  config.data.batch_size = 32
  config.data.crop = 'paper'  # random 224 crops of the 256 centre square: milder than 'inception'
  config.model.num_classes = 2
  config.optimizer.learning_rate = 0.001
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.trainable = 'classifier'
  config.checkpoint.every_steps = 100
  return config
