# Sourced by testbed/convert.sh and testbed/drill.sh: the inventory of each test-bed layout.
# layout_inventory LAYOUT SCRIPT -> prints the inventory path, or fails naming SCRIPT and LAYOUT.
layout_inventory() {
    case $1 in
        pinned) echo testbed/inventory/pinned.yml ;;
        kubespray) echo testbed/inventory/kubespray.ini ;;
        legacy) echo testbed/inventory/legacy.ini ;;
        kubeadm) echo testbed/inventory/kubeadm/hosts.yml ;;
        kubeadm-dns) echo testbed/inventory/kubeadm-dns/hosts.yml ;;
        novip) echo testbed/inventory/novip/hosts.yml ;;
        *) echo "$2: unknown layout '$1' (pinned|kubespray|kubeadm|kubeadm-dns|novip|legacy)" >&2; return 2 ;;
    esac
}
